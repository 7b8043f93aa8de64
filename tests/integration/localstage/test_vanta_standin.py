"""The Vanta stand-in over HTTP on 127.0.0.1: contract, pagination, limits and injected faults."""

from __future__ import annotations

import json
import socket
import threading
from typing import TYPE_CHECKING, Any

import pytest
import requests

from localstage.vanta_data import SEVERITIES, Dataset, Revision, VulnerabilityQuery, parse_date
from localstage.vanta_standin import (
    DEFAULT_CREDENTIALS,
    Credentials,
    FaultPlan,
    FaultRule,
    StandIn,
    StandInError,
    main,
    start_standin,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

DATA = Dataset(seed=21, vulnerability_count=400, asset_count=40, remediation_count=150)
OTHER = Credentials("vci_other_app", "vcs_other_secret")
ALL = VulnerabilityQuery(include_without_sla=True)


class FakeClock:
    """Monotonic clock the test moves by hand (token expiry, rate windows)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Client:
    """A minimal Vanta client over requests, enough to drive the stand-in."""

    def __init__(self, standin: StandIn, credentials: Credentials = DEFAULT_CREDENTIALS) -> None:
        self.url = standin.url
        self.credentials = credentials
        self.session = requests.Session()
        self.token = ""

    def mint(self) -> requests.Response:
        response = self.session.post(
            f"{self.url}/oauth/token",
            json={
                "client_id": self.credentials.client_id,
                "client_secret": self.credentials.client_secret,
                "scope": "vanta-api.all:read",
                "grant_type": "client_credentials",
            },
            timeout=5,
        )
        if response.status_code == 200:
            self.token = response.json()["access_token"]
        return response

    def get(self, path: str, token: str | None = None, **params: Any) -> requests.Response:
        return self.session.get(
            f"{self.url}/v1/{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token if token is None else token}"},
            timeout=5,
        )

    def walk(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every record of a listing, retrying a page once after a 5xx."""
        records: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page_params = dict(params) | ({"pageCursor": cursor} if cursor else {})
            response = self.get(path, **page_params)
            if response.status_code >= 500:
                response = self.get(path, **page_params)
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            records.extend(results["data"])
            if not results["pageInfo"]["hasNextPage"]:
                return records
            cursor = results["pageInfo"]["endCursor"]


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock: FakeClock) -> Iterator[StandIn]:
    standin = start_standin(dataset=DATA, credentials=[DEFAULT_CREDENTIALS, OTHER], clock=clock)
    yield standin
    standin.stop()


@pytest.fixture
def standin(server: StandIn) -> StandIn:
    server.reset()
    server.set_dataset(DATA)
    return server


@pytest.fixture
def client(standin: StandIn) -> Client:
    client = Client(standin)
    assert client.mint().status_code == 200
    return client


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in records]


# ----- OAuth -----


def test_token_answer_has_the_contract_shape(standin: StandIn) -> None:
    response = Client(standin).mint()
    assert response.status_code == 200
    body = response.json()
    assert body["access_token"].startswith("vat_")
    assert (body["expires_in"], body["token_type"]) == (3599, "Bearer")


def test_wrong_secret_is_401_and_wrong_grant_is_400(standin: StandIn) -> None:
    bad = Client(standin, Credentials(DEFAULT_CREDENTIALS.client_id, "vcs_wrong"))
    assert bad.mint().status_code == 401
    response = requests.post(
        f"{standin.url}/oauth/token",
        json={**json.loads(json.dumps({"client_id": "x"})), "grant_type": "password"},
        timeout=5,
    )
    assert response.status_code == 400


def test_a_new_token_revokes_the_previous_one_of_the_same_client_only(standin: StandIn) -> None:
    # given two tokens of one client, and one of another client
    first = Client(standin)
    first.mint()
    old = first.token
    other = Client(standin, OTHER)
    other.mint()
    first.mint()
    # then the old token is refused at once, the new one and the other client's work
    assert first.get("vulnerabilities", token=old).status_code == 401
    assert first.get("vulnerabilities").status_code == 200
    assert other.get("vulnerabilities").status_code == 200


def test_missing_or_unknown_token_is_401(standin: StandIn) -> None:
    client = Client(standin)
    assert client.get("vulnerabilities", token="vat_unknown").status_code == 401
    response = requests.get(f"{standin.url}/v1/vulnerabilities", timeout=5)
    assert response.status_code == 401


def test_token_expires_after_its_configured_lifetime(standin: StandIn, clock: FakeClock) -> None:
    standin.set_faults(FaultPlan(token_expires_in=10))
    client = Client(standin)
    assert client.mint().json()["expires_in"] == 10
    assert client.get("vulnerabilities").status_code == 200
    clock.advance(11)
    assert client.get("vulnerabilities").status_code == 401


def test_token_endpoint_allows_five_calls_a_minute(standin: StandIn, clock: FakeClock) -> None:
    client = Client(standin)
    assert [client.mint().status_code for _ in range(5)] == [200] * 5
    refused = client.mint()
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    clock.advance(61)
    assert client.mint().status_code == 200


# ----- listings -----


@pytest.mark.parametrize("page_size", [3, 10, 100])
def test_walk_returns_every_finding_exactly_once(client: Client, page_size: int) -> None:
    walked = client.walk(
        "vulnerabilities", pageSize=page_size, includeVulnerabilitiesWithoutSlas="true"
    )
    assert _ids(walked) == _ids(list(DATA.iter_vulnerabilities(ALL)))
    assert len(set(_ids(walked))) == 400


def test_default_page_size_is_ten(client: Client) -> None:
    results = client.get("vulnerable-assets").json()["results"]
    assert len(results["data"]) == 10
    assert results["pageInfo"]["hasPreviousPage"] is False


@pytest.mark.parametrize("path", ["vulnerable-assets", "vulnerability-remediations"])
def test_other_listings_walk_completely(client: Client, path: str) -> None:
    expected = DATA.iter_assets() if path == "vulnerable-assets" else DATA.iter_remediations()
    assert _ids(client.walk(path, pageSize=17)) == _ids(list(expected))


@pytest.mark.parametrize("size", ["0", "101", "-3", "ten", ""])
def test_page_size_outside_1_to_100_is_400_with_a_message(client: Client, size: str) -> None:
    response = client.get("vulnerabilities", pageSize=size)
    assert response.status_code == 400
    assert "pageSize" in response.json()["message"]


@pytest.mark.parametrize("size", [1, 100])
def test_page_size_bounds_are_accepted(client: Client, size: int) -> None:
    response = client.get("vulnerabilities", pageSize=size)
    assert len(response.json()["results"]["data"]) == size


def test_findings_without_sla_are_left_out_unless_asked_for(client: Client) -> None:
    default = client.walk("vulnerabilities", pageSize=100)
    everything = client.walk(
        "vulnerabilities", pageSize=100, includeVulnerabilitiesWithoutSlas="TRUE"
    )
    assert all(r["remediateByDate"] is not None for r in default)
    assert len(default) < len(everything) == 400
    deadlines = [r["remediateByDate"] for r in everything]
    dated = [parse_date(d) for d in deadlines if d is not None]
    assert dated == sorted(dated)
    assert deadlines[len(dated) :] == [None] * (400 - len(dated))


def test_filters_of_the_sync_select_matching_findings(client: Client) -> None:
    everything = list(DATA.iter_vulnerabilities(ALL))
    critical = client.walk("vulnerabilities", pageSize=100, severity="critical",
                           includeVulnerabilitiesWithoutSlas="true")  # fmt: skip
    assert _ids(critical) == [r["id"] for r in everything if r["severity"] == "CRITICAL"]
    fixable = client.walk("vulnerabilities", pageSize=100, isFixAvailable="true",
                          includeVulnerabilitiesWithoutSlas="true")  # fmt: skip
    assert _ids(fixable) == [r["id"] for r in everything if r["isFixable"]]
    snyk = client.walk("vulnerabilities", pageSize=100, integrationId="snyk",
                       includeVulnerabilitiesWithoutSlas="true")  # fmt: skip
    assert _ids(snyk) == [r["id"] for r in everything if r["integrationId"] == "snyk"]
    off = client.walk("vulnerabilities", pageSize=100, isDeactivated="true",
                      includeVulnerabilitiesWithoutSlas="true")  # fmt: skip
    assert _ids(off) == [r["id"] for r in everything if r["deactivateMetadata"]]


def test_bad_filter_values_are_400(client: Client) -> None:
    assert client.get("vulnerabilities", severity="SEVERE").status_code == 400
    assert client.get("vulnerabilities", isFixAvailable="maybe").status_code == 400
    assert client.get("vulnerability-remediations", remediatedAfterDate="soon").status_code == 400
    assert client.get("vulnerabilities", pageCursor="not-a-cursor").status_code == 400


def test_unknown_query_parameters_are_ignored(client: Client) -> None:
    plain = client.get("vulnerable-assets", pageSize=5).json()
    extra = client.get("vulnerable-assets", pageSize=5, somethingElse="x", limit=3).json()
    assert plain == extra


def test_remediations_since_a_date_for_incremental_syncs(client: Client) -> None:
    everything = list(DATA.iter_remediations())
    since = everything[100]["remediationDate"]
    recent = client.walk("vulnerability-remediations", pageSize=50, remediatedAfterDate=since)
    assert _ids(recent) == _ids(everything[100:])
    before = client.walk("vulnerability-remediations", pageSize=50, remediatedBeforeDate=since)
    assert _ids(before) == _ids(everything[:100])


def test_lookup_by_id_and_404_for_unknown(client: Client) -> None:
    finding = next(DATA.iter_vulnerabilities())
    assert client.get(f"vulnerabilities/{finding['id']}").json() == finding
    asset = client.get(f"vulnerable-assets/{finding['targetId']}").json()
    assert asset["id"] == finding["targetId"]
    assert client.get("vulnerabilities/000000000000000000000000").status_code == 404
    assert client.get("nothing-here").status_code == 404


# ----- rate limits -----


def test_general_rate_limit_answers_429_with_retry_after(
    standin: StandIn, client: Client, clock: FakeClock
) -> None:
    standin.set_faults(FaultPlan(rate_limit_per_minute=3))
    statuses = [client.get("vulnerable-assets").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("vulnerable-assets")
    assert int(limited.headers["Retry-After"]) >= 1
    clock.advance(60)
    assert client.get("vulnerable-assets").status_code == 200
    assert standin.stats()["stats"]["rate_limited"] == 2


@pytest.mark.parametrize("retry_after", [2, None])
def test_rate_storm_sends_429s_then_recovers(
    standin: StandIn, client: Client, retry_after: int | None
) -> None:
    standin.set_faults(
        FaultPlan(rules=(FaultRule("rate_storm", times=3, retry_after=retry_after),))
    )
    responses = [client.get("vulnerable-assets") for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 429, 200]
    assert responses[0].headers.get("Retry-After") == (
        None if retry_after is None else str(retry_after)
    )


# ----- faults -----


def test_5xx_on_page_k_once_then_the_retry_succeeds(standin: StandIn, client: Client) -> None:
    standin.set_faults(
        FaultPlan(rules=(FaultRule("status", endpoint="vulnerable-assets", at=2, status=502),))
    )
    first = client.get("vulnerable-assets", pageSize=10).json()["results"]
    cursor = first["pageInfo"]["endCursor"]
    assert client.get("vulnerable-assets", pageCursor=cursor).status_code == 502
    retried = client.get("vulnerable-assets", pageCursor=cursor)
    assert retried.status_code == 200
    assert retried.json()["results"]["data"][0]["id"] == DATA.asset_id(10)


def test_5xx_n_times_counts_in_state(standin: StandIn, client: Client) -> None:
    standin.set_faults({"rules": [{"kind": "status", "status": 504, "times": 3}]})
    statuses = [client.get("vulnerable-assets").status_code for _ in range(4)]
    assert statuses == [504, 504, 504, 200]
    state = standin.stats()
    assert state["stats"]["faults_fired"] == {"status": 3}
    assert state["faults"]["rules"][0]["fired"] == 3


def test_large_pages_fail_until_the_client_halves_the_page_size(
    standin: StandIn, client: Client
) -> None:
    standin.set_faults(FaultPlan(rules=(FaultRule("status_over_page_size", max_page_size=25),)))
    assert client.get("vulnerabilities", pageSize=100).status_code == 503
    assert client.get("vulnerabilities", pageSize=50).status_code == 503
    assert client.get("vulnerabilities", pageSize=25).status_code == 200


def test_latency_is_added_and_recorded(standin: StandIn, client: Client) -> None:
    standin.set_faults(FaultPlan(rules=(FaultRule("latency", seconds=0.002),)))
    for _ in range(3):
        assert client.get("vulnerable-assets").status_code == 200
    assert standin.stats()["stats"]["latency_injected_seconds"] == pytest.approx(0.006)


def test_malformed_records_on_page_k_keep_their_ids(standin: StandIn, client: Client) -> None:
    standin.set_faults(
        FaultPlan(rules=(FaultRule("malformed", endpoint="vulnerabilities", at=2, count=3),))
    )
    good = client.get("vulnerabilities").json()["results"]["data"]
    assert all(r["severity"] in SEVERITIES for r in good)
    broken = client.get("vulnerabilities").json()["results"]["data"]
    assert _ids(broken) == _ids(good)
    assert "severity" not in broken[0]
    assert "firstDetectedDate" not in broken[0]
    assert broken[1]["severity"] == "SEVERE"
    assert isinstance(broken[2]["isFixable"], str)
    assert isinstance(broken[2]["firstDetectedDate"], int)
    assert broken[3:] == good[3:]


def test_malformed_record_by_id(standin: StandIn, client: Client) -> None:
    standin.set_faults(
        {
            "rules": [
                {"kind": "malformed", "endpoint": "vulnerabilities/{id}", "variant": "wrong_type"}
            ]
        }
    )
    finding_id = DATA.vulnerability_id(3)
    broken = client.get(f"vulnerabilities/{finding_id}").json()
    assert (broken["id"], broken["cvssSeverityScore"]) == (finding_id, "9.8")
    assert client.get(f"vulnerabilities/{finding_id}").json() == DATA.get_vulnerability(finding_id)


def test_revocation_mid_run_gives_401_until_a_new_token(standin: StandIn, client: Client) -> None:
    standin.set_faults(FaultPlan(rules=(FaultRule("revoke_token", after=2),)))
    statuses = [client.get("vulnerable-assets").status_code for _ in range(3)]
    assert statuses == [200, 200, 401]
    assert client.mint().status_code == 200
    assert client.get("vulnerable-assets").status_code == 200
    assert client.get("vulnerable-assets").status_code == 200


def test_truncated_body_is_invalid_json(standin: StandIn, client: Client) -> None:
    standin.set_faults(FaultPlan(rules=(FaultRule("truncated", endpoint="vulnerable-assets"),)))
    response = client.get("vulnerable-assets")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert client.get("vulnerable-assets").json()["results"]["data"]


def test_short_read_breaks_the_connection(standin: StandIn, client: Client) -> None:
    standin.set_faults(FaultPlan(rules=(FaultRule("truncated", mode="short_read"),)))
    with pytest.raises(
        (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
    ):
        client.get("vulnerable-assets")
    assert client.get("vulnerable-assets").status_code == 200


def test_token_endpoint_down(standin: StandIn) -> None:
    standin.set_faults({"rules": [{"kind": "token_down", "status": 503}]})
    client = Client(standin)
    assert [client.mint().status_code for _ in range(2)] == [503, 503]
    standin.set_faults(FaultPlan())
    assert client.mint().status_code == 200


def test_duplicates_repeat_records_on_the_next_page(standin: StandIn, client: Client) -> None:
    standin.set_faults(
        FaultPlan(rules=(FaultRule("duplicates", endpoint="vulnerable-assets", at=1, count=2),))
    )
    walked = _ids(client.walk("vulnerable-assets", pageSize=10))
    expected = _ids(list(DATA.iter_assets()))
    assert len(walked) == len(expected) + 2
    assert set(walked) == set(expected)
    assert walked[8:10] == walked[10:12]


def test_vanish_leaves_records_out_of_a_page_and_the_listing_goes_on(
    standin: StandIn, client: Client
) -> None:
    # given a rule that makes three records of the second page vanish
    standin.set_faults(
        FaultPlan(rules=(FaultRule("vanish", endpoint="vulnerable-assets", at=2, count=3),))
    )
    # when the listing is walked
    walked = _ids(client.walk("vulnerable-assets", pageSize=10))
    # then exactly those three are missing and every other record comes once, in order
    expected = _ids(list(DATA.iter_assets()))
    assert walked == expected[:10] + expected[13:]
    assert standin.stats()["stats"]["faults_fired"]["vanish"] == 1


def test_latency_longer_than_the_read_timeout_times_the_call_out(
    standin: StandIn, client: Client
) -> None:
    # given an upstream slower than the client is willing to wait, once
    standin.set_faults(
        FaultPlan(rules=(FaultRule("latency", endpoint="vulnerable-assets", seconds=0.6, times=1),))
    )
    # when the client calls with a 0.1 s read timeout
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.session.get(
            f"{client.url}/v1/vulnerable-assets",
            headers={"Authorization": f"Bearer {client.token}"},
            timeout=(1, 0.1),
        )
    # then the next call is answered normally
    assert client.get("vulnerable-assets").status_code == 200


# ----- admin -----


def test_admin_endpoints_over_http(standin: StandIn, client: Client) -> None:
    url = standin.url
    faults = {"rules": [{"kind": "status", "status": 500}], "rate_limit_per_minute": 0}
    assert requests.post(f"{url}/_admin/faults", json=faults, timeout=5).status_code == 200
    assert client.get("vulnerable-assets").status_code == 500
    assert requests.get(f"{url}/v1/vulnerable-assets", timeout=5).status_code == 401
    state = requests.get(f"{url}/_admin/state", timeout=5).json()
    assert state["stats"]["requests"] == {"token": 1, "vulnerable-assets": 2}
    assert state["stats"]["tokens_minted"] == 1
    assert state["stats"]["responses"] == {"200": 1, "500": 1, "401": 1}
    bad = requests.post(f"{url}/_admin/faults", json={"rules": [{"kind": "fire"}]}, timeout=5)
    assert bad.status_code == 400
    revision = {"revision": {"number": 2, "removed_count": 5, "added_count": 10}}
    assert requests.post(f"{url}/_admin/dataset", json=revision, timeout=5).status_code == 200
    assert requests.post(f"{url}/_admin/reset", timeout=5).status_code == 200
    client.mint()
    assert len(client.walk("vulnerabilities", pageSize=100,
                           includeVulnerabilitiesWithoutSlas="true")) == 405  # fmt: skip
    assert standin.stats()["stats"]["faults_fired"] == {}


def test_python_api_serves_a_new_revision(standin: StandIn, client: Client) -> None:
    revised = DATA.with_revision(Revision(number=2, change_fraction=0.05))
    standin.set_dataset(revised)
    walked = client.walk("vulnerabilities", pageSize=100, includeVulnerabilitiesWithoutSlas="true")
    assert walked == list(revised.iter_vulnerabilities(ALL))
    assert standin.dataset is revised


def test_page_cpu_time_is_recorded(standin: StandIn, client: Client) -> None:
    client.walk("vulnerabilities", pageSize=100)
    stats = standin.stats()["stats"]
    assert stats["pages_served"] >= 4
    assert 0 < stats["page_cpu_seconds_max"] < 1


# ----- start-up -----


def test_refuses_to_bind_beyond_loopback() -> None:
    with pytest.raises(StandInError, match="loopback"):
        start_standin(host="0.0.0.0")  # noqa: S104 - the refusal is the point


def test_port_in_use_is_a_clear_error(server: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(StandInError, match="already in use"):
        start_standin(port=server.port)
    assert main(["--port", str(server.port), "--vulnerabilities", "10"]) == 2
    assert "already in use" in capsys.readouterr().err


def test_cli_prints_url_and_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    # given a stop event already set, the CLI starts, reports, and stops at once
    stop = threading.Event()
    stop.set()
    assert main(["--port", "0", "--seed", "3", "--vulnerabilities", "50"], stop=stop) == 0
    out = capsys.readouterr().out
    assert "development and test fixture" in out
    assert "http://127.0.0.1:" in out
    assert DEFAULT_CREDENTIALS.client_id in out
    assert DEFAULT_CREDENTIALS.client_secret in out


def test_post_to_an_unknown_route_does_not_poison_the_connection(standin: StandIn) -> None:
    session = requests.Session()
    assert (
        session.post(f"{standin.url}/v1/vulnerabilities", json={"x": 1}, timeout=5).status_code
        == 404
    )
    assert session.post(f"{standin.url}/_admin/reset", json={}, timeout=5).status_code == 200


def test_standin_stops_and_frees_its_port() -> None:
    standin = start_standin(dataset=Dataset(vulnerability_count=5, asset_count=1))
    port = standin.port
    standin.stop()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
