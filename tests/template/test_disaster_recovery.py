"""Disaster recovery: custom domain, failover records and health checks, shared key, replication."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import pytest

from tests.template.cfnview import parameter_values, rule_failures

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed, Template

pytestmark = [pytest.mark.template]

HASH: Final = "a" * 64
CERTIFICATE: Final = (
    "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
)
DOMAIN: Final = {"ApiDomainName": "vulnstats.example.com", "ApiCertificateArn": CERTIFICATE}
ZONE: Final = {"HostedZoneId": "Z0123456789ABC"}
SECRET: Final = "arn:aws:secretsmanager:us-east-1:123456789012:secret:vulnstats/api-key-AbCdEf"
REPLICA: Final = "arn:aws:s3:::vulnstats-dr-archivebucket-0123456789ab"
DR_RESOURCES: Final = {
    "ApiDomain",
    "ApiBasePathMapping",
    "ApiHealthCheck",
    "ApiFailoverRecord",
    "ArchiveReplicationRole",
    "ArchiveReplicationPolicy",
    "SharedApiKey",
}


def _refused(template: Template, **overrides: object) -> list[str]:
    values = parameter_values(template, {"ApiVersionHash": HASH, **overrides})
    return [failure.split(":", 1)[0] for failure in rule_failures(template, values)]


def test_by_default_a_stack_is_single_region(deployed: Callable[..., Deployed]) -> None:
    view = deployed()

    assert not DR_RESOURCES & set(view.resources)
    assert "ReplicationConfiguration" not in view.properties("ArchiveBucket")
    assert "Value" not in view.properties("ApiKey")
    assert not {"ApiDomainTarget", "ApiHealthCheckId"} & set(view.outputs)
    # the readiness endpoint and the bucket's ARN are there for a second region to use
    assert view.outputs["ApiReadinessUrl"]["Value"].endswith("/v1/health/ready")
    assert view.outputs["ArchiveBucketArn"]["Value"] == {"Fn::GetAtt": ["ArchiveBucket", "Arn"]}


def test_the_readiness_bound_reaches_the_api_function(deployed: Callable[..., Deployed]) -> None:
    variables = deployed(ReadinessMaxDataAgeSeconds=14400).properties("ApiFunction")["Environment"][
        "Variables"
    ]

    assert variables["READINESS_MAX_DATA_AGE_SECONDS"] == "14400"


@pytest.mark.parametrize("base_path", ["", "stats"])
def test_a_custom_domain_maps_to_the_stage(
    deployed: Callable[..., Deployed], base_path: str
) -> None:
    view = deployed(**DOMAIN, ApiBasePath=base_path)

    domain = view.properties("ApiDomain")
    assert domain["DomainName"] == "vulnstats.example.com"
    assert domain["RegionalCertificateArn"] == CERTIFICATE
    assert domain["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert domain["SecurityPolicy"] == "TLS_1_2"
    mapping = view.properties("ApiBasePathMapping")
    assert mapping["RestApiId"] == {"Ref": "VulnApi"}
    assert mapping["Stage"] == {"Ref": "VulnApiv1Stage"}
    assert mapping.get("BasePath") == (base_path or None)
    # a domain alone creates no DNS record and no health check
    assert "ApiFailoverRecord" not in view.resources
    assert "ApiHealthCheck" not in view.resources


@pytest.mark.parametrize("role", ["PRIMARY", "SECONDARY"])
def test_each_role_gets_its_failover_record_and_a_health_check_on_its_own_readiness(
    deployed: Callable[..., Deployed], role: str
) -> None:
    view = deployed(**DOMAIN, **ZONE, FailoverRole=role)

    record = view.properties("ApiFailoverRecord")
    assert record["Failover"] == role
    assert record["Name"] == "vulnstats.example.com"
    assert record["HostedZoneId"] == "Z0123456789ABC"
    assert record["Type"] == "CNAME"
    assert record["TTL"] == "60"
    assert record["ResourceRecords"] == [{"Fn::GetAtt": ["ApiDomain", "RegionalDomainName"]}]
    assert record["HealthCheckId"] == {"Ref": "ApiHealthCheck"}
    assert record["SetIdentifier"] == "vulnstats-test-us-east-1"
    check = view.properties("ApiHealthCheck")["HealthCheckConfig"]
    # this region's own stage, not the shared name (which may resolve to the other region)
    assert check["FullyQualifiedDomainName"] == "${VulnApi}.execute-api.us-east-1.amazonaws.com"
    assert check["ResourcePath"] == "/v1/health/ready"
    assert (check["Type"], check["Port"], check["EnableSNI"]) == ("HTTPS", 443, True)
    assert (check["RequestInterval"], check["FailureThreshold"]) == ("30", "3")
    assert view.outputs["ApiHealthCheckId"]["Value"] == {"Ref": "ApiHealthCheck"}


def test_health_check_timing_follows_the_parameters(deployed: Callable[..., Deployed]) -> None:
    view = deployed(
        **DOMAIN,
        **ZONE,
        FailoverRole="SECONDARY",
        HealthCheckRequestInterval=10,
        HealthCheckFailureThreshold=2,
        FailoverRecordTtl=30,
    )

    check = view.properties("ApiHealthCheck")["HealthCheckConfig"]
    assert (check["RequestInterval"], check["FailureThreshold"]) == ("10", "2")
    assert view.properties("ApiFailoverRecord")["TTL"] == "30"


def test_the_failover_parameters_document_route_53s_choices(sam_template: Template) -> None:
    parameters = sam_template["Parameters"]

    # Route 53 offers a 10 s or 30 s interval (default 30) and a threshold of 1-10 (default 3)
    assert parameters["HealthCheckRequestInterval"]["AllowedValues"] == [10, 30]
    assert parameters["HealthCheckRequestInterval"]["Default"] == 30
    threshold = parameters["HealthCheckFailureThreshold"]
    assert (threshold["MinValue"], threshold["MaxValue"], threshold["Default"]) == (1, 10, 3)


def test_a_shared_api_key_comes_from_the_secret_by_dynamic_reference(
    deployed: Callable[..., Deployed], sam_template: Template
) -> None:
    view = deployed(ApiKeySecretArn=SECRET)

    assert "ApiKey" not in view.resources  # the generated key gives way to the shared one
    value = view.properties("SharedApiKey")["Value"]
    assert value == "{{resolve:secretsmanager:" + SECRET + ":SecretString:apiKey}}"
    assert "Name" not in view.properties("SharedApiKey")  # a replacement cannot collide
    assert view.properties("ApiUsagePlanKey")["KeyId"] == {"Ref": "SharedApiKey"}
    assert view.outputs["ApiKeyId"]["Value"] == {"Ref": "SharedApiKey"}
    # no parameter carries a key value: nothing to echo, nothing in a default
    for name, spec in sam_template["Parameters"].items():
        if "Key" in name and "Secret" not in name:
            assert spec.get("Default", "") in {"", "false", "true"} or spec.get("NoEcho"), name


def test_replication_copies_raw_pages_to_the_other_regions_versioned_archive(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed(ArchiveReplicaBucketArn=REPLICA)

    bucket = view.properties("ArchiveBucket")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}  # S3 requires it
    replication = bucket["ReplicationConfiguration"]
    assert replication["Role"] == {"Fn::GetAtt": ["ArchiveReplicationRole", "Arn"]}
    (rule,) = replication["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["Filter"] == {"Prefix": "raw/"}
    assert rule["Destination"] == {"Bucket": REPLICA}
    trust = view.properties("ArchiveReplicationRole")["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "s3.amazonaws.com"}]
    policy = view.properties("ArchiveReplicationPolicy")
    assert policy["Roles"] == [{"Ref": "ArchiveReplicationRole"}]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["WriteTheReplicas"]["Resource"] == REPLICA + "/raw/*"
    for statement in statements.values():
        actions: list[str] = statement["Action"]
        assert all(action.startswith("s3:") and "*" not in action for action in actions)
        assert statement["Resource"] != "*"


def test_replication_off_creates_no_role(deployed: Callable[..., Deployed]) -> None:
    view = deployed(ArchiveReplicaBucketArn="", **DOMAIN)

    assert "ArchiveReplicationRole" not in view.resources
    assert "ArchiveReplicationPolicy" not in view.resources


REFUSED: Final[list[tuple[dict[str, Any], str]]] = [
    ({"ApiDomainName": "vulnstats.example.com"}, "ApiDomainNeedsItsCertificate"),
    ({"ApiCertificateArn": CERTIFICATE}, "ApiDomainNeedsItsCertificate"),
    ({"FailoverRole": "PRIMARY"}, "FailoverNeedsADomainAndAZone"),
    ({**DOMAIN, "FailoverRole": "SECONDARY"}, "FailoverNeedsADomainAndAZone"),
    ({"ApiKeySecretArn": SECRET, "ApiAuthType": "IAM"}, "SharedApiKeyNeedsApiKeyAuth"),
    (
        {"ArchiveReplicaBucketArn": REPLICA, "CustomerManagedKey": "true"},
        "ArchiveReplicationWithAwsManagedKeys",
    ),
]


@pytest.mark.parametrize(("overrides", "rule"), REFUSED)
def test_rules_refuse_half_configured_recovery(
    sam_template: Template, overrides: dict[str, Any], rule: str
) -> None:
    assert _refused(sam_template, **overrides) == [rule]


def test_rules_accept_a_complete_standby(sam_template: Template) -> None:
    assert (
        _refused(
            sam_template,
            **DOMAIN,
            **ZONE,
            FailoverRole="SECONDARY",
            ApiKeySecretArn=SECRET,
            ArchiveReplicaBucketArn=REPLICA,
        )
        == []
    )
