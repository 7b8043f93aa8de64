"""Vanta client against the stand-in on 127.0.0.1: full walks, faults, limits and resumption."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import requests
from fakes.clock import FakeClock, FakeSleep

from lambdakit.retry import Deadline
from localstage.vanta_data import Dataset, RemediationQuery, parse_date
from localstage.vanta_standin import FaultPlan, FaultRule, StandIn, start_standin
from vulnstats.errors import DeadlineExceededError, InvalidRecordError, UpstreamCircuitOpenError
from vulnstats.models import parse_asset, parse_remediation, parse_vulnerability
from vulnstats.vanta import (
    Page,
    StaticCredentials,
    VantaClient,
    VantaClientConfig,
    clear_shared_session,
    new_breaker,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("vanta-client")]

DATA = Dataset(seed=11, vulnerability_count=600, asset_count=60, remediation_count=250)


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(10_000.0)


@pytest.fixture(scope="module")
def standin(clock: FakeClock) -> Iterator[StandIn]:
    with start_standin(port=0, dataset=DATA, clock=clock) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


@pytest.fixture
def sleep(standin: StandIn, clock: FakeClock) -> FakeSleep:
    standin.reset()
    return FakeSleep(clock)


def make_client(
    standin: StandIn,
    session: requests.Session | None,
    sleep: FakeSleep,
    *,
    deadline_in: float | None = None,
    **overrides: Any,
) -> VantaClient:
    values: dict[str, Any] = {
        "base_url": standin.url,
        "page_size": 100,
        "min_page_size": 10,
        "pages_per_minute": None,
        "base_delay": 0.2,
    }
    values.update(overrides)
    cfg = VantaClientConfig(**values)
    credentials = standin.credentials[0]
    clock = sleep.clock
    return VantaClient(
        StaticCredentials(credentials.client_id, credentials.client_secret),
        config=cfg,
        session=session,
        clock=clock,
        sleep=sleep,
        deadline=None if deadline_in is None else Deadline.after(deadline_in, clock=clock),
        breaker=new_breaker(cfg, name="standin", clock=clock),
        random_fn=random.Random(3).random,  # noqa: S311 - seeded jitter
    )


def record_ids(pages: Iterable[Page]) -> list[str]:
    return [record["id"] for page in pages for record in page.records]


def oracle_vulnerability_ids() -> list[str]:
    return list(DATA.iter_vulnerability_ids(include_without_sla=True))


def stats(standin: StandIn) -> dict[str, Any]:
    result: dict[str, Any] = standin.stats()["stats"]
    return result


# ----- full walks -----


def test_full_walk_of_vulnerabilities_matches_the_oracle(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    # given the stand-in serving 600 findings, some without an SLA
    client = make_client(standin, session, sleep)
    # when every page is walked
    pages = list(client.iter_vulnerabilities())
    # then every finding came once, in listing order, and every record is valid
    assert record_ids(pages) == oracle_vulnerability_ids()
    vulns = [parse_vulnerability(r) for page in pages for r in page.records]
    assert any(v.remediate_by_date is None for v in vulns)
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))
    assert pages[-1].has_next is False
    assert stats(standin)["tokens_minted"] == 1
    assert sleep.calls == []


def test_remediations_after_a_date_match_the_oracle(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    after = DATA.now - timedelta(days=120)
    client = make_client(standin, session, sleep, page_size=50)
    pages = list(client.iter_remediations(after))
    expected = DATA.iter_remediations(
        RemediationQuery(remediated_after_ms=parse_date(after.isoformat()))
    )
    assert record_ids(pages) == [r["id"] for r in expected]
    remediations = [parse_remediation(r) for page in pages for r in page.records]
    assert remediations
    assert all(r.remediation_date is not None and r.remediation_date >= after for r in remediations)


def test_assets_match_the_oracle(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    client = make_client(standin, session, sleep, page_size=25)
    pages = list(client.iter_assets())
    assert record_ids(pages) == [a["id"] for a in DATA.iter_assets()]
    assert len({parse_asset(r).asset_type for page in pages for r in page.records}) > 1


def test_shared_pooled_session_is_used_when_none_is_given(
    standin: StandIn, sleep: FakeSleep
) -> None:
    try:
        client = make_client(standin, None, sleep, page_size=100)
        assert len(record_ids(client.iter_assets())) == DATA.asset_count
    finally:
        clear_shared_session()


# ----- limits and faults -----


def test_rate_storm_with_retry_after_is_waited_out(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    # given three 429s with Retry-After: 2 on the second page
    standin.set_faults(
        FaultPlan(
            rules=(
                FaultRule("rate_storm", endpoint="vulnerabilities", at=2, times=3, retry_after=2),
            )
        )
    )
    client = make_client(standin, session, sleep)
    # when the listing is walked
    pages = list(client.iter_vulnerabilities())
    # then the client waited as asked each time and lost nothing
    assert record_ids(pages) == oracle_vulnerability_ids()
    assert sleep.calls == [2.0, 2.0, 2.0]
    assert stats(standin)["rate_limited"] == 3


def test_rate_storm_without_retry_after_backs_off(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    standin.set_faults(
        FaultPlan(
            rules=(
                FaultRule(
                    "rate_storm", endpoint="vulnerabilities", at=1, times=3, retry_after=None
                ),
            )
        )
    )
    client = make_client(standin, session, sleep)
    pages = list(client.iter_vulnerabilities())
    assert record_ids(pages) == oracle_vulnerability_ids()
    assert len(sleep.calls) == 3
    assert all(0 <= wait <= 0.2 * 2**n for n, wait in enumerate(sleep.calls))


def test_the_upstream_rate_limit_is_honoured_through_retry_after(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    # given an upstream limit of 3 requests a minute, which answers 429 with Retry-After
    standin.set_faults(FaultPlan(rate_limit_per_minute=3))
    client = make_client(standin, session, sleep)
    # when a 6-page listing is walked
    pages = list(client.iter_vulnerabilities())
    # then the fourth page was refused once, the client waited the minute asked, and finished
    assert record_ids(pages) == oracle_vulnerability_ids()
    assert stats(standin)["rate_limited"] == 1
    assert sleep.calls == [60.0]


def test_page_rate_limit_keeps_the_run_under_the_upstream_limit(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    # given the same upstream limit and a client configured for it
    standin.set_faults(FaultPlan(rate_limit_per_minute=3))
    client = make_client(standin, session, sleep, pages_per_minute=3)
    pages = list(client.iter_vulnerabilities())
    # then no request was refused
    assert record_ids(pages) == oracle_vulnerability_ids()
    assert stats(standin)["rate_limited"] == 0


def test_a_token_revoked_mid_run_costs_exactly_one_new_token(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    standin.set_faults(FaultPlan(rules=(FaultRule("revoke_token", after=3),)))
    client = make_client(standin, session, sleep)
    pages = list(client.iter_vulnerabilities())
    assert record_ids(pages) == oracle_vulnerability_ids()
    assert stats(standin)["tokens_minted"] == 2
    assert client.stats.token_reauths == 1


def test_5xx_over_a_page_size_halves_the_page(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    standin.set_faults(
        FaultPlan(
            rules=(
                FaultRule("status_over_page_size", endpoint="vulnerabilities", max_page_size=50),
            )
        )
    )
    client = make_client(standin, session, sleep)
    pages = list(client.iter_vulnerabilities())
    assert record_ids(pages) == oracle_vulnerability_ids()
    assert {p.page_size for p in pages} == {50}
    assert client.stats.page_size_halvings == len(pages)


@pytest.mark.parametrize("mode", ["invalid_json", "short_read"])
def test_truncated_bodies_are_retried(
    standin: StandIn, session: requests.Session, sleep: FakeSleep, mode: Any
) -> None:
    standin.set_faults(
        FaultPlan(
            rules=(FaultRule("truncated", endpoint="vulnerabilities", at=2, times=2, mode=mode),)
        )
    )
    client = make_client(standin, session, sleep)
    pages = list(client.iter_vulnerabilities())
    assert record_ids(pages) == oracle_vulnerability_ids()
    assert stats(standin)["faults_fired"]["truncated"] == 2
    assert len(sleep.calls) == 2


def test_malformed_records_are_rejected_by_id_and_the_rest_parse(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    standin.set_faults(
        FaultPlan(rules=(FaultRule("malformed", endpoint="vulnerabilities", at=1, count=3),))
    )
    client = make_client(standin, session, sleep)
    page = client.fetch_page("vulnerabilities", None)
    rejected: list[InvalidRecordError] = []
    for raw in page.records:
        try:
            parse_vulnerability(raw)
        except InvalidRecordError as exc:
            rejected.append(exc)
    assert [e.record_id for e in rejected] == [r["id"] for r in page.records[:3]]
    assert [e.reason for e in rejected] == [
        "severity: missing",
        "severity: unknown value 'SEVERE'",
        "isFixable: expected bool, got str",
    ]


def test_an_upstream_that_is_down_opens_the_circuit(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    standin.set_faults(FaultPlan(rules=(FaultRule("status", endpoint="*", times=None),)))
    client = make_client(standin, session, sleep, breaker_failure_threshold=3)
    with pytest.raises(UpstreamCircuitOpenError):
        client.fetch_page("vulnerabilities", None)
    requests_before = sum(stats(standin)["requests"].values())
    with pytest.raises(UpstreamCircuitOpenError):
        client.fetch_page("vulnerabilities", None)
    assert sum(stats(standin)["requests"].values()) == requests_before


# ----- deadline and resumption -----


def test_a_run_out_of_time_resumes_from_its_checkpoint_in_a_new_run(
    standin: StandIn, session: requests.Session, sleep: FakeSleep
) -> None:
    # given runs of 25 s at 6 pages a minute (one page every 10 s)
    stored: list[Page] = []
    checkpoint: Page | None = None
    runs = 0
    while True:
        runs += 1
        client = make_client(standin, session, sleep, deadline_in=25.0, pages_per_minute=6)
        start = None if checkpoint is None else checkpoint.end_cursor
        number = 1 if checkpoint is None else checkpoint.number + 1
        try:
            # when each run stores pages and checkpoints after each one
            for page in client.iter_vulnerabilities(start, first_page_number=number):
                stored.append(page)
                checkpoint = page
            break
        except DeadlineExceededError:
            assert runs < 10
    # then the runs together stored every finding once, with page numbers that follow on
    assert runs > 1
    assert record_ids(stored) == oracle_vulnerability_ids()
    assert [p.number for p in stored] == list(range(1, len(stored) + 1))
