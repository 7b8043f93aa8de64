"""Vanta client over a fake transport and a fake clock: auth, retries, deadline, breaker, pages."""

from __future__ import annotations

import itertools
import json
import logging
import random
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from fakes.clock import FakeClock, FakeSleep

from lambdakit.breaker import clear_breakers
from lambdakit.metrics import UPSTREAM_RETRIES, InMemoryMetricSink
from lambdakit.retry import Deadline
from vulnstats.errors import (
    AuthError,
    DeadlineExceededError,
    RetriesExhaustedError,
    TransientUpstreamError,
    UpstreamCircuitOpenError,
    UpstreamProtocolError,
    VantaError,
    VantaHTTPError,
)
from vulnstats.metrics import SYNC_METRICS
from vulnstats.vanta import (
    PAGES_FETCHED,
    SCOPE,
    HttpSession,
    Page,
    PageRateLimiter,
    StaticCredentials,
    VantaClient,
    VantaClientConfig,
    format_rfc3339,
    new_breaker,
    remediation_window_start,
    token_fingerprint,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from lambdakit.breaker import CircuitBreaker

BASE = "https://vanta.test"
CLIENT_ID = "vci_unit_test"
SECRET = "vcs_unit_test_secret"
WALL_NOW = 1_800_000_000.0


@dataclass
class FakeResponse:
    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)


def respond(status: int, body: object, headers: Mapping[str, str] | None = None) -> FakeResponse:
    return FakeResponse(status, json.dumps(body).encode(), dict(headers or {}))


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    json: Any
    timeout: tuple[float, float] | None
    at: float

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.url).query))


type Scripted = FakeResponse | Exception


class FakeVanta:
    """A transport that serves tokens and cursor pages of ``records`` like the real API.

    Only the latest token is accepted (minting revokes the previous one). Scripted answers
    queued in ``token_script`` / ``page_script`` replace the next answers of that kind.
    Every request takes ``latency`` seconds on the fake clock.
    """

    def __init__(self, clock: FakeClock, *, records: int = 25, expires_in: int = 3599) -> None:
        self.clock = clock
        self.records = [{"id": f"vuln-{i:03d}", "n": i} for i in range(records)]
        self.expires_in = expires_in
        self.latency = 0.05
        self.sent: list[Sent] = []
        self.token_script: deque[Scripted] = deque()
        self.page_script: deque[Scripted] = deque()
        self.credentials = (CLIENT_ID, SECRET)
        self.current: str | None = None
        self.minted = 0

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: tuple[float, float] | None = None,
    ) -> FakeResponse:
        sent = Sent(method, url, dict(headers or {}), json, timeout, self.clock())
        self.sent.append(sent)
        self.clock.advance(self.latency)
        is_token = sent.path == "/oauth/token"
        script = self.token_script if is_token else self.page_script
        if script:
            item = script.popleft()
            if isinstance(item, Exception):
                raise item
            return item
        return self._mint(json) if is_token else self._page(sent)

    def revoke(self) -> None:
        self.current = None

    @property
    def pages_sent(self) -> list[Sent]:
        return [s for s in self.sent if s.path.startswith("/v1/")]

    @property
    def tokens_sent(self) -> list[Sent]:
        return [s for s in self.sent if s.path == "/oauth/token"]

    def _mint(self, body: dict[str, str]) -> FakeResponse:
        if (body["client_id"], body["client_secret"]) != self.credentials:
            return respond(401, {"error": "unauthorized"})
        self.minted += 1
        self.current = f"vat_token_number_{self.minted}"
        return respond(
            200,
            {"access_token": self.current, "expires_in": self.expires_in, "token_type": "Bearer"},
        )

    def _page(self, sent: Sent) -> FakeResponse:
        if self.current is None or sent.headers.get("Authorization") != f"Bearer {self.current}":
            return respond(401, {"error": "unauthorized", "message": "token revoked"})
        size = int(sent.query["pageSize"])
        cursor = sent.query.get("pageCursor")
        start = 0 if cursor is None else int(cursor.removeprefix("c")) + 1
        chunk = self.records[start : start + size]
        end = start + len(chunk) - 1
        info = {
            "endCursor": f"c{end}" if chunk else None,
            "hasNextPage": start + size < len(self.records),
            "hasPreviousPage": start > 0,
            "startCursor": f"c{start}" if chunk else None,
        }
        return respond(200, {"results": {"pageInfo": info, "data": chunk}})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(5000.0)


@pytest.fixture
def sleep(clock: FakeClock) -> FakeSleep:
    return FakeSleep(clock)


@pytest.fixture
def vanta(clock: FakeClock) -> FakeVanta:
    return FakeVanta(clock)


def config(**overrides: Any) -> VantaClientConfig:
    values: dict[str, Any] = {
        "base_url": BASE,
        "page_size": 10,
        "min_page_size": 10,
        "pages_per_minute": None,
    }
    values.update(overrides)
    return VantaClientConfig(**values)


def make_client(
    vanta: FakeVanta,
    sleep: FakeSleep,
    *,
    cfg: VantaClientConfig | None = None,
    remaining: float | None = None,
    metrics: InMemoryMetricSink | None = None,
    breaker: CircuitBreaker | None = None,
    credentials: StaticCredentials | None = None,
) -> VantaClient:
    clock = sleep.clock
    cfg = cfg or config()
    return VantaClient(
        credentials or StaticCredentials(CLIENT_ID, SECRET),
        config=cfg,
        session=vanta,
        clock=clock,
        wall_clock=lambda: WALL_NOW,
        sleep=sleep,
        deadline=None if remaining is None else Deadline.after(remaining, clock=clock),
        metrics=metrics,
        breaker=breaker or new_breaker(cfg, name="unit", clock=clock),
        random_fn=random.Random(11).random,  # noqa: S311 - seeded jitter
    )


def ids(pages: list[Page]) -> list[str]:
    return [record["id"] for page in pages for record in page.records]


# ----- tokens -----


def test_one_token_is_minted_and_reused_for_every_page(vanta: FakeVanta, sleep: FakeSleep) -> None:
    # given a listing of three pages
    client = make_client(vanta, sleep)
    # when it is walked
    pages = list(client.iter_vulnerabilities())
    # then one token served every page, asked for with the contract's body
    assert ids(pages) == [r["id"] for r in vanta.records]
    assert len(vanta.tokens_sent) == 1
    assert vanta.tokens_sent[0].json == {
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "scope": SCOPE,
        "grant_type": "client_credentials",
    }
    assert {s.headers["Authorization"] for s in vanta.pages_sent} == {"Bearer vat_token_number_1"}
    assert client.stats.tokens_minted == 1


def test_token_is_refreshed_about_a_minute_before_expiry(
    vanta: FakeVanta, sleep: FakeSleep, clock: FakeClock
) -> None:
    # given a token that lives 3599 s
    client = make_client(vanta, sleep)
    client.fetch_page("vulnerabilities", None)
    # when a page is asked 3500 s later, then 40 s after that
    clock.advance(3500)
    client.fetch_page("vulnerabilities", None)
    minted_at_3500 = vanta.minted
    clock.advance(40)
    client.fetch_page("vulnerabilities", None)
    # then the first still uses the old token and the second mints a new one in advance
    assert minted_at_3500 == 1
    assert vanta.minted == 2
    assert client.stats.token_reauths == 0


def test_short_lived_token_is_not_minted_on_every_call(vanta: FakeVanta, sleep: FakeSleep) -> None:
    # given tokens that live 30 s, less than the refresh margin
    vanta.expires_in = 30
    client = make_client(vanta, sleep)
    # when three pages are fetched at once
    list(client.iter_vulnerabilities())
    # then one token served them all
    assert vanta.minted == 1


def test_401_mints_one_new_token_and_repeats_the_call(vanta: FakeVanta, sleep: FakeSleep) -> None:
    # given a token revoked after the first page (another mint elsewhere)
    client = make_client(vanta, sleep)
    pages = client.iter_vulnerabilities()
    first = next(pages)
    vanta.revoke()
    # when the walk goes on
    rest = list(pages)
    # then exactly one new token was minted and no record was lost
    assert ids([first, *rest]) == [r["id"] for r in vanta.records]
    assert vanta.minted == 2
    assert client.stats.token_reauths == 1


def test_second_401_after_a_new_token_raises_auth_error(vanta: FakeVanta, sleep: FakeSleep) -> None:
    # given an upstream that refuses every token
    vanta.page_script.extend(
        [respond(401, {"message": "no"}), respond(401, {"message": "still no"})]
    )
    client = make_client(vanta, sleep)
    # when a page is asked, then AuthError carries the status and body, after one re-mint
    with pytest.raises(AuthError) as caught:
        client.fetch_page("vulnerabilities", None)
    assert caught.value.status == 401
    assert "still no" in caught.value.body
    assert vanta.minted == 2
    assert len(vanta.pages_sent) == 2


def test_rejected_credentials_are_re_read_once_then_auth_error(
    vanta: FakeVanta, sleep: FakeSleep
) -> None:
    # given credentials the token endpoint refuses
    credentials = StaticCredentials(CLIENT_ID, "vcs_rotated_away")
    client = make_client(vanta, sleep, credentials=credentials)
    # when a page is asked
    with pytest.raises(AuthError) as caught:
        client.fetch_page("vulnerabilities", None)
    # then the provider was asked to refresh once, and no page request was sent
    assert credentials.refreshes == 1
    assert caught.value.status == 401
    assert len(vanta.tokens_sent) == 2
    assert vanta.pages_sent == []


def test_token_endpoint_400_is_an_auth_error(vanta: FakeVanta, sleep: FakeSleep) -> None:
    vanta.token_script.append(respond(400, {"error": "invalid_scope"}))
    client = make_client(vanta, sleep)
    with pytest.raises(AuthError) as caught:
        client.fetch_page("vulnerabilities", None)
    assert caught.value.status == 400
    assert "invalid_scope" in caught.value.body


def test_token_endpoint_429_retry_after_is_honoured(vanta: FakeVanta, sleep: FakeSleep) -> None:
    # given the token endpoint's own limit (5 a minute) answering 429 for 40 s
    vanta.token_script.append(respond(429, {}, {"Retry-After": "40"}))
    client = make_client(vanta, sleep)
    # when a page is asked, then the client waited and then minted
    assert len(client.fetch_page("vulnerabilities", None).records) == 10
    assert sleep.calls == [40.0]
    assert vanta.minted == 1


def test_token_endpoint_503_is_retried(vanta: FakeVanta, sleep: FakeSleep) -> None:
    vanta.token_script.append(respond(503, {}))
    client = make_client(vanta, sleep)
    page = client.fetch_page("vulnerabilities", None)
    assert len(page.records) == 10
    assert len(vanta.tokens_sent) == 2


def test_secrets_and_tokens_never_reach_the_logs(
    vanta: FakeVanta, sleep: FakeSleep, caplog: pytest.LogCaptureFixture
) -> None:
    # given a run with a re-mint and a retry, logged at debug level
    caplog.set_level(logging.DEBUG)
    vanta.page_script.append(respond(503, {}))
    client = make_client(vanta, sleep)
    pages = client.iter_vulnerabilities()
    next(pages)
    vanta.revoke()
    list(pages)
    # then neither the secret nor any token appears, only the token's fingerprint
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert SECRET not in text
    assert "vat_token_number" not in text
    assert token_fingerprint("vat_token_number_1") in text
    assert SECRET not in repr(StaticCredentials(CLIENT_ID, SECRET))


# ----- retries -----


def test_429_with_retry_after_waits_as_asked(vanta: FakeVanta, sleep: FakeSleep) -> None:
    # given a 429 asking for 7 s
    vanta.page_script.append(respond(429, {"error": "too_many_requests"}, {"Retry-After": "7"}))
    metrics = InMemoryMetricSink()
    client = make_client(vanta, sleep, metrics=metrics)
    # when a page is asked
    page = client.fetch_page("vulnerabilities", None)
    # then the client waited 7 s (never less) before the successful retry
    assert len(page.records) == 10
    assert sleep.calls == [7.0]
    assert metrics.total(UPSTREAM_RETRIES) == 1


def test_429_with_an_http_date_retry_after(vanta: FakeVanta, sleep: FakeSleep) -> None:
    when = datetime.fromtimestamp(WALL_NOW + 12, UTC)
    vanta.page_script.append(respond(429, {}, {"Retry-After": format_datetime(when, usegmt=True)}))
    client = make_client(vanta, sleep)
    client.fetch_page("vulnerabilities", None)
    assert sleep.calls == [12.0]


def test_429_without_retry_after_backs_off_exponentially_with_jitter(
    vanta: FakeVanta, sleep: FakeSleep
) -> None:
    # given three 429s without Retry-After
    vanta.page_script.extend([respond(429, {})] * 3)
    client = make_client(vanta, sleep, cfg=config(base_delay=1.0, max_delay=20.0))
    # when a page is asked
    client.fetch_page("vulnerabilities", None)
    # then each wait lies within the full-jitter bound 1, 2, 4 s of its retry
    assert len(sleep.calls) == 3
    for n, waited in enumerate(sleep.calls):
        assert 0.0 <= waited <= 2.0**n


def test_5xx_is_retried_then_succeeds(vanta: FakeVanta, sleep: FakeSleep) -> None:
    vanta.page_script.extend([respond(502, {}), respond(504, {})])
    client = make_client(vanta, sleep)
    page = client.fetch_page("vulnerabilities", None)
    assert len(page.records) == 10
    assert len(vanta.pages_sent) == 3


def test_5xx_on_a_large_page_halves_the_page_size_for_that_request(
    vanta: FakeVanta, sleep: FakeSleep
) -> None:
    # given a page size of 100 and a 503 for it
    vanta.records = [{"id": f"v{i}"} for i in range(120)]
    vanta.page_script.append(respond(503, {}))
    client = make_client(vanta, sleep, cfg=config(page_size=100, min_page_size=10))
    # when the listing is walked
    pages = list(client.iter_vulnerabilities())
    # then the failed page was retried with 50 and the next page asked 100 again
    sizes = [int(s.query["pageSize"]) for s in vanta.pages_sent]
    assert sizes == [100, 50, 100]
    assert [p.page_size for p in pages] == [50, 100]
    assert ids(pages) == [r["id"] for r in vanta.records]
    assert client.stats.page_size_halvings == 1


def test_page_size_is_never_halved_below_the_minimum(vanta: FakeVanta, sleep: FakeSleep) -> None:
    vanta.page_script.extend([respond(500, {})] * 3)
    client = make_client(vanta, sleep, cfg=config(page_size=40, min_page_size=15))
    client.fetch_page("vulnerabilities", None)
    assert [int(s.query["pageSize"]) for s in vanta.pages_sent] == [40, 20, 15, 15]


def test_400_fails_fast_with_status_and_raw_body(vanta: FakeVanta, sleep: FakeSleep) -> None:
    vanta.page_script.append(FakeResponse(400, b'{"error":"bad_request","message":"pageSize"}'))
    client = make_client(vanta, sleep)
    with pytest.raises(VantaHTTPError) as caught:
        client.fetch_page("vulnerabilities", None)
    assert caught.value.status == 400
    assert caught.value.body == '{"error":"bad_request","message":"pageSize"}'
    assert len(vanta.pages_sent) == 1
    assert sleep.calls == []


def test_a_long_error_body_is_truncated(vanta: FakeVanta, sleep: FakeSleep) -> None:
    vanta.page_script.append(FakeResponse(404, b"x" * 10_000))
    client = make_client(vanta, sleep, cfg=config(error_body_limit=100))
    with pytest.raises(VantaHTTPError) as caught:
        client.fetch_page("assets", None)
    assert caught.value.body == "x" * 100 + "..."


def test_408_is_retried(vanta: FakeVanta, sleep: FakeSleep) -> None:
    vanta.page_script.append(respond(408, {}))
    client = make_client(vanta, sleep)
    assert len(client.fetch_page("vulnerabilities", None).records) == 10


@pytest.mark.parametrize(
    "failure",
    [
        requests.exceptions.ConnectTimeout("connect"),
        requests.exceptions.ReadTimeout("read"),
        requests.exceptions.ConnectionError("reset"),
        requests.exceptions.ChunkedEncodingError("short read"),
        FakeResponse(200, b'{"results": {"pageInfo": {"endCursor": "c9", "hasN'),
    ],
    ids=["connect-timeout", "read-timeout", "connection", "short-read", "truncated-json"],
)
def test_transport_failures_and_cut_bodies_are_retried(
    vanta: FakeVanta, sleep: FakeSleep, failure: Scripted
) -> None:
    vanta.page_script.append(failure)
    client = make_client(vanta, sleep)
    page = client.fetch_page("vulnerabilities", None)
    assert len(page.records) == 10
    assert len(vanta.pages_sent) == 2


def test_retries_stop_after_the_attempt_limit(vanta: FakeVanta, sleep: FakeSleep) -> None:
    vanta.page_script.extend([respond(503, {"error": "down"})] * 10)
    client = make_client(vanta, sleep, cfg=config(max_attempts=3, breaker_failure_threshold=10))
    with pytest.raises(RetriesExhaustedError) as caught:
        client.fetch_page("vulnerabilities", None)
    assert caught.value.reason == "attempts"
    assert caught.value.attempts == 3
    assert isinstance(caught.value.last_error, TransientUpstreamError)
    assert caught.value.last_error.status == 503
    assert len(vanta.pages_sent) == 3


def test_a_retry_after_beyond_the_cap_stops_retrying(vanta: FakeVanta, sleep: FakeSleep) -> None:
    vanta.page_script.append(respond(429, {}, {"Retry-After": "600"}))
    client = make_client(vanta, sleep, cfg=config(max_retry_after=120))
    with pytest.raises(RetriesExhaustedError) as caught:
        client.fetch_page("vulnerabilities", None)
    assert caught.value.reason == "retry_after"
    assert sleep.calls == []


# ----- deadline -----


def test_deadline_stops_retries_with_the_typed_deadline_error(
    vanta: FakeVanta, sleep: FakeSleep, clock: FakeClock
) -> None:
    # given 8 s left and an upstream asking to come back in 10 s
    vanta.page_script.append(respond(429, {}, {"Retry-After": "10"}))
    client = make_client(vanta, sleep, remaining=8.0)
    # when a page is asked
    with pytest.raises(DeadlineExceededError) as caught:
        client.fetch_page("vulnerabilities", None)
    # then the client did not wait past the deadline and says why
    assert sleep.calls == []
    assert isinstance(caught.value.__cause__, TransientUpstreamError)
    assert client.deadline is not None
    assert not client.deadline.expired()


def test_backoff_is_trimmed_to_fit_the_deadline(vanta: FakeVanta, sleep: FakeSleep) -> None:
    # given 6 s left and a backoff policy of up to 30 s
    vanta.page_script.append(respond(503, {}))
    client = make_client(vanta, sleep, cfg=config(base_delay=30.0, max_delay=60.0), remaining=6.0)
    # when a page fails once
    page = client.fetch_page("vulnerabilities", None)
    # then the wait left room for the retry (a minimum call time plus the safety margin)
    assert len(page.records) == 10
    assert len(sleep.calls) == 1
    assert 0 < sleep.calls[0] <= 6.0 - 2.0


def test_no_call_starts_that_cannot_finish_before_the_deadline(
    vanta: FakeVanta, sleep: FakeSleep
) -> None:
    # given 1.5 s left, a 1 s safety margin and a 1 s minimum call time
    client = make_client(vanta, sleep, remaining=1.5)
    # when a page is asked, then nothing is sent
    with pytest.raises(DeadlineExceededError):
        client.fetch_page("vulnerabilities", None)
    assert vanta.sent == []


def test_per_call_timeout_comes_from_the_remaining_time(vanta: FakeVanta, sleep: FakeSleep) -> None:
    # given 10 s left, a 30 s read timeout and a 1 s safety margin
    client = make_client(vanta, sleep, remaining=10.0)
    # when the token and a page are fetched
    client.fetch_page("vulnerabilities", None)
    # then each call's timeout ends before the deadline minus the margin
    token_call, page_call = vanta.sent
    assert token_call.timeout is not None
    assert page_call.timeout is not None
    assert token_call.timeout[0] == 3.05
    assert token_call.timeout[1] == pytest.approx(9.0)
    assert page_call.timeout[1] == pytest.approx(9.0 - vanta.latency)


def test_without_a_deadline_the_configured_timeouts_apply(
    vanta: FakeVanta, sleep: FakeSleep
) -> None:
    client = make_client(vanta, sleep)
    client.fetch_page("vulnerabilities", None)
    assert vanta.sent[-1].timeout == (3.05, 30.0)


def test_remaining_ms_callable_sets_the_deadline(vanta: FakeVanta, clock: FakeClock) -> None:
    client = VantaClient(
        StaticCredentials(CLIENT_ID, SECRET),
        config=config(),
        session=vanta,
        clock=clock,
        remaining_ms=lambda: 3_500,
        breaker=new_breaker(name="unit", clock=clock),
    )
    client.fetch_page("vulnerabilities", None)
    # 3.5 s left minus the 1 s margin: the connect timeout shrinks with the read timeout
    assert vanta.sent[0].timeout == (2.5, 2.5)
    with pytest.raises(ValueError, match="not both"):
        VantaClient(
            StaticCredentials(CLIENT_ID, SECRET),
            remaining_ms=lambda: 1,
            deadline=Deadline.after(1, clock=clock),
        )


# ----- circuit breaker -----


def test_breaker_opens_after_repeated_failures_and_then_fails_fast(
    vanta: FakeVanta, sleep: FakeSleep
) -> None:
    # given a breaker that opens after 3 failures and an upstream that keeps failing
    vanta.page_script.extend([respond(503, {})] * 10)
    cfg = config(breaker_failure_threshold=3, max_attempts=5)
    breaker = new_breaker(cfg, name="unit-open", clock=sleep.clock)
    client = make_client(vanta, sleep, cfg=cfg, breaker=breaker)
    # when a page is asked, the third failure opens the circuit
    with pytest.raises(UpstreamCircuitOpenError) as caught:
        client.fetch_page("vulnerabilities", None)
    sent = len(vanta.sent)
    # then the next call is refused without reaching the upstream
    with pytest.raises(UpstreamCircuitOpenError) as again:
        client.fetch_page("vulnerabilities", None)
    assert breaker.state == "open"
    assert len(vanta.sent) == sent
    assert isinstance(caught.value.__cause__, TransientUpstreamError)
    assert again.value.retry_in > 0
    assert isinstance(again.value, VantaError)


def test_without_a_breaker_clients_share_the_environment_breaker(
    vanta: FakeVanta, clock: FakeClock
) -> None:
    # given two runs in one execution environment and an upstream that fails
    vanta.page_script.extend([respond(503, {})] * 10)
    cfg = config(breaker_failure_threshold=2, max_attempts=2)
    clear_breakers()
    try:
        first = VantaClient(
            StaticCredentials(CLIENT_ID, SECRET),
            config=cfg,
            session=vanta,
            clock=clock,
            sleep=FakeSleep(clock),
        )
        with pytest.raises(UpstreamCircuitOpenError):
            first.fetch_page("vulnerabilities", None)
        sent = len(vanta.sent)
        # when the next run starts, then it is refused at once: the outage is remembered
        second = VantaClient(
            StaticCredentials(CLIENT_ID, SECRET),
            config=cfg,
            session=vanta,
            clock=clock,
            sleep=FakeSleep(clock),
        )
        with pytest.raises(UpstreamCircuitOpenError):
            second.fetch_page("vulnerabilities", None)
        assert len(vanta.sent) == sent
    finally:
        clear_breakers()


def test_429s_do_not_open_the_breaker(vanta: FakeVanta, sleep: FakeSleep) -> None:
    vanta.page_script.extend([respond(429, {})] * 4)
    cfg = config(breaker_failure_threshold=2, max_attempts=5)
    breaker = new_breaker(cfg, name="unit-429", clock=sleep.clock)
    client = make_client(vanta, sleep, cfg=cfg, breaker=breaker)
    assert len(client.fetch_page("vulnerabilities", None).records) == 10
    assert breaker.state == "closed"


def test_breaker_lets_a_probe_through_after_its_timeout(
    vanta: FakeVanta, sleep: FakeSleep, clock: FakeClock
) -> None:
    vanta.page_script.extend([respond(503, {})] * 2)
    cfg = config(breaker_failure_threshold=2, breaker_reset_timeout=30.0)
    breaker = new_breaker(cfg, name="unit-probe", clock=clock)
    client = make_client(vanta, sleep, cfg=cfg, breaker=breaker)
    with pytest.raises(UpstreamCircuitOpenError):
        client.fetch_page("vulnerabilities", None)
    clock.advance(31)
    assert len(client.fetch_page("vulnerabilities", None).records) == 10
    assert breaker.state == "closed"


# ----- page rate -----


def test_page_rate_limiter_spaces_page_requests(vanta: FakeVanta, sleep: FakeSleep) -> None:
    # given a limit of 30 pages a minute (one every 2 s)
    client = make_client(vanta, sleep, cfg=config(pages_per_minute=30))
    # when three pages are walked
    list(client.iter_vulnerabilities())
    # then page requests started at least 2 s apart, and the token call was not delayed
    starts = [s.at for s in vanta.pages_sent]
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [2.0, 2.0]
    assert vanta.tokens_sent[0].at == pytest.approx(5000.0)
    assert client.stats.rate_limit_wait_seconds == pytest.approx(2 * (2.0 - vanta.latency))


def test_rate_limit_wait_that_would_pass_the_deadline_raises(
    vanta: FakeVanta, sleep: FakeSleep
) -> None:
    client = make_client(vanta, sleep, cfg=config(pages_per_minute=2), remaining=20.0)
    pages = client.iter_vulnerabilities()
    next(pages)
    with pytest.raises(DeadlineExceededError):
        next(pages)
    assert len(vanta.pages_sent) == 1


def test_rate_limiter_alone(clock: FakeClock) -> None:
    sleep = FakeSleep(clock)
    limiter = PageRateLimiter(120, clock=clock, sleep=sleep)
    assert limiter.acquire() == 0.0
    clock.advance(0.2)
    assert limiter.acquire() == pytest.approx(0.3)
    assert PageRateLimiter(None, clock=clock, sleep=sleep).delay() == 0.0


# ----- pagination -----


def test_walk_yields_numbered_pages_with_cursors(vanta: FakeVanta, sleep: FakeSleep) -> None:
    metrics = InMemoryMetricSink()
    client = make_client(vanta, sleep, metrics=metrics)
    pages = list(client.iter_vulnerabilities())
    assert [(p.number, p.cursor, p.end_cursor, p.has_next) for p in pages] == [
        (1, None, "c9", True),
        (2, "c9", "c19", True),
        (3, "c19", "c24", False),
    ]
    assert json.loads(pages[0].raw)["results"]["data"] == pages[0].records
    assert all(p.entity == "vulnerabilities" for p in pages)
    assert metrics.total(PAGES_FETCHED) == 3
    assert PAGES_FETCHED in SYNC_METRICS


def test_pagination_resumes_from_a_checkpointed_cursor(vanta: FakeVanta, sleep: FakeSleep) -> None:
    # given a run that stored page 1 and checkpointed its end cursor
    first_run = make_client(vanta, sleep)
    checkpoint = next(first_run.iter_vulnerabilities())
    # when a new run resumes from it
    second_run = make_client(vanta, sleep)
    rest = list(
        second_run.iter_vulnerabilities(
            checkpoint.end_cursor, first_page_number=checkpoint.number + 1
        )
    )
    # then the records follow on without a gap or a repeat
    assert ids([checkpoint, *rest]) == [r["id"] for r in vanta.records]
    assert [p.number for p in rest] == [2, 3]
    assert vanta.pages_sent[1].query["pageCursor"] == "c9"


def test_vulnerabilities_include_findings_without_sla(vanta: FakeVanta, sleep: FakeSleep) -> None:
    client = make_client(vanta, sleep)
    next(client.iter_vulnerabilities(filters={"severity": "HIGH"}))
    sent = vanta.pages_sent[0]
    assert sent.path == "/v1/vulnerabilities"
    assert sent.query == {
        "severity": "HIGH",
        "includeVulnerabilitiesWithoutSlas": "true",
        "pageSize": "10",
    }


def test_a_single_vulnerability_page_also_includes_findings_without_sla(
    vanta: FakeVanta, sleep: FakeSleep
) -> None:
    client = make_client(vanta, sleep)
    client.fetch_page("vulnerabilities", "c9", params={"includeVulnerabilitiesWithoutSlas": "no"})
    assert vanta.pages_sent[0].query["includeVulnerabilitiesWithoutSlas"] == "true"


def test_requests_session_satisfies_the_session_port() -> None:
    with requests.Session() as real:
        port: HttpSession = real
        assert callable(port.request)


def test_remediations_are_asked_after_a_date(vanta: FakeVanta, sleep: FakeSleep) -> None:
    client = make_client(vanta, sleep)
    after = datetime(2024, 4, 1, 2, 0, 0, 123456, tzinfo=UTC)
    next(client.iter_remediations(after))
    next(client.iter_remediations(None))
    first, second = vanta.pages_sent
    assert first.path == "/v1/vulnerability-remediations"
    assert first.query["remediatedAfterDate"] == "2024-04-01T02:00:00.123Z"
    assert "remediatedAfterDate" not in second.query


def test_assets_are_listed(vanta: FakeVanta, sleep: FakeSleep) -> None:
    client = make_client(vanta, sleep, cfg=config(base_url=f"{BASE}/v1/"))
    pages = list(client.iter_assets())
    assert vanta.pages_sent[0].path == "/v1/vulnerable-assets"
    assert len(ids(pages)) == 25
    assert pages[0].entity == "assets"


def test_a_cursor_that_does_not_move_is_a_protocol_error(
    vanta: FakeVanta, sleep: FakeSleep
) -> None:
    looping = {"results": {"pageInfo": {"endCursor": "c9", "hasNextPage": True}, "data": []}}
    vanta.page_script.extend([respond(200, looping)] * 2)
    client = make_client(vanta, sleep)
    with pytest.raises(UpstreamProtocolError, match="endCursor"):
        list(client.iter_vulnerabilities("c9"))


@pytest.mark.parametrize(
    "body",
    [{"data": []}, {"results": {"data": "x"}}, {"results": {"data": [], "pageInfo": []}}, []],
)
def test_a_body_without_the_contract_shape_is_a_protocol_error(
    vanta: FakeVanta, sleep: FakeSleep, body: object
) -> None:
    vanta.page_script.append(respond(200, body))
    client = make_client(vanta, sleep)
    with pytest.raises(UpstreamProtocolError):
        client.fetch_page("vulnerabilities", None)


def test_missing_has_next_page_is_inferred_from_the_cursor(
    vanta: FakeVanta, sleep: FakeSleep
) -> None:
    vanta.page_script.append(
        respond(200, {"results": {"pageInfo": {"endCursor": "c9"}, "data": [{"id": "a"}]}})
    )
    client = make_client(vanta, sleep)
    assert client.fetch_page("vulnerabilities", None).has_next is True


# ----- helpers and configuration -----


def test_remediation_window_start_subtracts_the_overlap() -> None:
    last = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)
    assert remediation_window_start(None) is None
    assert remediation_window_start(last) == last - timedelta(hours=24)
    assert remediation_window_start(last, timedelta(minutes=5)) == datetime(
        2024, 5, 2, 11, 55, tzinfo=UTC
    )


def test_format_rfc3339_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone"):
        format_rfc3339(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    "overrides",
    [
        {"base_url": "ftp://vanta"},
        {"page_size": 101},
        {"min_page_size": 20, "page_size": 10},
        {"pages_per_minute": 0},
        {"max_attempts": 0},
        {"read_timeout": 0},
    ],
)
def test_config_rejects_bad_values(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        config(**overrides)


def test_importing_the_client_does_not_import_requests() -> None:
    code = (
        "import sys, vulnstats.vanta, vulnstats.models; "
        "print('requests' in sys.modules, 'boto3' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[3] / "layers" / "shared")},
    )
    assert result.stdout.split() == ["False", "False"]
