"""EMF lines read back into the metric points CloudWatch extracts from them."""

from __future__ import annotations

import json

import pytest

from lambdakit.emf import EmfError, MetricPoint, looks_like_emf, parse_emf

LINE = json.dumps(
    {
        "_aws": {
            "Timestamp": 1_700_000_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "VulnStats",
                    "Dimensions": [["service"]],
                    "Metrics": [
                        {"Name": "RecordsFetched", "Unit": "Count"},
                        {"Name": "SyncDurationSeconds", "Unit": "Seconds"},
                    ],
                }
            ],
        },
        "service": "sync",
        "RecordsFetched": [1600.0],
        "SyncDurationSeconds": 7.5,
    }
)


def test_given_powertools_emf_line_when_parsing_then_every_value_is_a_point() -> None:
    points = parse_emf(LINE)

    assert points == [
        MetricPoint(
            "VulnStats",
            "RecordsFetched",
            "Count",
            1600.0,
            1_700_000_000_000,
            (("service", "sync"),),
        ),
        MetricPoint(
            "VulnStats",
            "SyncDurationSeconds",
            "Seconds",
            7.5,
            1_700_000_000_000,
            (("service", "sync"),),
        ),
    ]


def test_given_lines_when_sniffing_then_only_json_with_aws_metadata_claims_emf() -> None:
    assert looks_like_emf(LINE)
    assert not looks_like_emf('{"level":"INFO","message":"run complete"}')
    assert not looks_like_emf("REPORT RequestId: 1\tDuration: 1 ms")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r.update(_aws="x"), "_aws is not an object"),
        (lambda r: r["_aws"].update(Timestamp="soon"), "Timestamp"),
        (lambda r: r["_aws"].update(CloudWatchMetrics=[]), "CloudWatchMetrics"),
        (lambda r: r.pop("service"), "dimension 'service'"),
        (lambda r: r.update(RecordsFetched=["many"]), "'RecordsFetched'"),
        (lambda r: r.update(RecordsFetched=float("nan")), "'RecordsFetched'"),
    ],
)
def test_given_malformed_emf_when_parsing_then_error_names_the_problem(
    mutate: object, reason: str
) -> None:
    record = json.loads(LINE)
    mutate(record)  # type: ignore[operator]

    with pytest.raises(EmfError, match=reason):
        parse_emf(json.dumps(record))


def test_given_truncated_line_when_parsing_then_error_says_not_json() -> None:
    with pytest.raises(EmfError, match="not JSON"):
        parse_emf(LINE[:40])
