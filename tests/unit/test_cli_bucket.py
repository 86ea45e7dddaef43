"""The expected bucket configuration and the evaluators doctor and bucket-setup share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hypothesis import given
from hypothesis import strategies as st

from helppet_recordings import RecordingSettings
from helppet_recordings.cli.bucket import (
    BucketExpectations,
    apply_configuration,
    evaluate_cors,
    evaluate_lifecycle,
    evaluate_public_access,
    lifecycle_days,
    read_part,
    staging_prefix,
)
from helppet_recordings.cli.findings import Status
from helppet_recordings.environment import DeploymentSettings
from tests.support.moto_s3 import moto_bucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import LifecycleRuleTypeDef

ORIGIN = "https://app.example.com"


def expectations(*origins: str, settings: RecordingSettings | None = None) -> BucketExpectations:
    """What a bucket should look like for these origins and settings."""
    settings = settings or RecordingSettings()
    return BucketExpectations(
        bucket=settings.s3_bucket_name,
        origins=origins,
        recordings_prefix=settings.s3_recordings_prefix,
        staging_prefix=staging_prefix(settings),
        days=lifecycle_days(settings),
    )


def upload_rule(**changes: Any) -> dict[str, Any]:
    """A CORS rule letting ORIGIN upload, with ``changes``."""
    rule: dict[str, Any] = {
        "AllowedOrigins": [ORIGIN],
        "AllowedMethods": ["POST", "PUT"],
        "ExposeHeaders": ["ETag"],
    }
    return rule | changes


segment = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True)


@given(
    prefix=st.lists(segment, max_size=3).map("/".join),
    origins=st.lists(
        st.from_regex(r"https://[a-z]{1,10}\.example\.com(:[1-9][0-9]{3})?", fullmatch=True),
        max_size=3,
        unique=True,
    ),
    expiration=st.integers(1, 7 * 24 * 3600),
    grace=st.integers(0, 7 * 24 * 3600),
)
def test_the_expected_configuration_passes_its_own_checks(
    prefix: str, origins: list[str], expiration: int, grace: int
) -> None:
    """Whatever the settings, what bucket-setup would put is what doctor calls ok."""
    settings = RecordingSettings(
        s3_recordings_prefix=prefix,
        s3_presigned_url_expiration=expiration,
        upload_grace_seconds=grace,
    )
    expect = expectations(*origins, settings=settings)
    rule = expect.cors_rule()
    cors, cors_needed = evaluate_cors([] if rule is None else [rule], expect)
    lifecycle, lifecycle_needed = evaluate_lifecycle(list(expect.lifecycle_rules()), expect)
    public, public_needed = evaluate_public_access(dict(expect.public_access_block()))
    assert [cors.status, lifecycle.status, public.status] == [Status.OK] * 3
    assert not (cors_needed or lifecycle_needed or public_needed)
    assert expect.days * 86400 > expiration + grace  # never expires what may still complete


def test_staging_lives_under_the_recordings_prefix() -> None:
    """The default staging prefix is S3_RECORDINGS_PREFIX + 'staging/'; 2 days by default."""
    settings = RecordingSettings(s3_recordings_prefix="audio")
    assert staging_prefix(settings) == "audio/staging/"
    assert lifecycle_days(RecordingSettings()) == 2


def test_cors_must_let_each_origin_post_and_put_and_expose_etag() -> None:
    """A missing PUT, a hidden ETag or a missing origin each fail, naming what is wrong."""
    expect = expectations(ORIGIN, "https://other.example.com")
    finding, needed = evaluate_cors(
        [upload_rule(AllowedMethods=["POST"], ExposeHeaders=[])], expect
    )
    assert finding.status is Status.FAIL
    assert needed
    assert f"{ORIGIN} may not PUT" in finding.message
    assert f"{ORIGIN} POST: ETag not exposed" in finding.message
    assert "https://other.example.com may not POST" in finding.message
    assert finding.fix is not None
    assert "bucket-setup --apply" in finding.fix


def test_cors_matches_wildcard_origins_and_warns_about_everyone() -> None:
    """'https://*.example.com' covers the origin; '*' works too but is a warning."""
    expect = expectations(ORIGIN)
    narrow, _ = evaluate_cors([upload_rule(AllowedOrigins=["https://*.example.com"])], expect)
    everyone, needed = evaluate_cors([upload_rule(AllowedOrigins=["*"])], expect)
    assert narrow.status is Status.OK
    assert everyone.status is Status.WARN
    assert not needed


def test_a_rule_naming_the_origin_in_another_case_does_not_let_it_in() -> None:
    """Browsers send the origin lowercased and S3 compares AllowedOrigins as written: fail."""
    expect = expectations(ORIGIN)
    finding, needed = evaluate_cors(
        [upload_rule(AllowedOrigins=["https://App.Example.com"])], expect
    )
    assert (finding.status, needed) == (Status.FAIL, True)
    assert f"{ORIGIN} may not POST" in finding.message


def test_bucket_setup_writes_the_origin_as_browsers_send_it() -> None:
    """A mixed-case HELPPET_CORS_ORIGINS is put lowercased, and doctor then finds it ok."""
    environment = DeploymentSettings.from_env({"HELPPET_CORS_ORIGINS": "https://App.Example.com/"})
    expect = BucketExpectations.from_environment(environment)
    with moto_bucket(expect.bucket) as client:
        applied = {r.part: r.action for r in apply_configuration(client, expect)}
        assert applied["cors"] == "applied"
        rules: list[Mapping[str, Any]] = [
            dict(rule) for rule in client.get_bucket_cors(Bucket=expect.bucket)["CORSRules"]
        ]
        assert [rule["AllowedOrigins"] for rule in rules] == [[ORIGIN]]
        assert evaluate_cors(rules, expect)[0].status is Status.OK
        assert evaluate_cors(rules, expectations("HTTPS://APP.EXAMPLE.COM"))[0].status is Status.OK


def test_cors_is_not_needed_without_browser_origins() -> None:
    """No HELPPET_CORS_ORIGINS: no CORS is fine, an open '*' rule is a warning."""
    assert evaluate_cors(None, expectations())[0].status is Status.OK
    assert evaluate_cors([upload_rule(AllowedOrigins=["*"])], expectations())[0].status is (
        Status.WARN
    )


def test_lifecycle_missing_rules_fail_and_are_added() -> None:
    """Without our two rules: fail, and bucket-setup adds them."""
    finding, needed = evaluate_lifecycle([], expectations())
    assert finding.status is Status.FAIL
    assert needed
    assert "incomplete multipart" in finding.message
    assert "recordings/staging/" in finding.message


def test_a_rule_expiring_verified_recordings_fails() -> None:
    """An expiration over the whole recordings prefix would delete verified audio: fail."""
    expect = expectations()
    rules = [
        *expect.lifecycle_rules(),
        {"ID": "tidy", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 90}},
    ]
    finding, needed = evaluate_lifecycle(rules, expect)
    assert finding.status is Status.FAIL
    assert "rule 'tidy' expires objects under ''" in finding.message
    assert not needed  # ours are there; bucket-setup leaves the bucket's own rules alone


SLOW_UPLOADS = RecordingSettings(s3_presigned_url_expiration=7 * 86400)
"""Upload URLs live a week: an upload may be completed up to 9 days after it started."""


def test_an_abort_rule_shorter_than_an_upload_may_take_is_a_warning() -> None:
    """A foreign rule aborting multipart uploads early could abort a phone's resumable upload.

    Not a failure (no verified audio is lost; the phone starts over), and the
    rule is the bucket's own, so bucket-setup leaves it alone.
    """
    expect = expectations(settings=SLOW_UPLOADS)
    assert expect.days == 9
    theirs: dict[str, Any] = {
        "ID": "tidy-multipart",
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    }
    finding, needed = evaluate_lifecycle([*expect.lifecycle_rules(), theirs], expect)
    assert (finding.status, needed) == (Status.WARN, False)
    assert "rule 'tidy-multipart' aborts multipart uploads after 1 day" in finding.message
    assert "(at least 9)" in finding.message
    assert finding.fix is not None
    assert "DaysAfterInitiation" in finding.fix
    assert "bucket-setup leaves other rules alone" in finding.fix
    long_enough = {**theirs, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 9}}
    elsewhere = {**theirs, "Filter": {"Prefix": "exports/"}}
    for harmless in (long_enough, elsewhere, {**theirs, "Status": "Disabled"}):
        finding, needed = evaluate_lifecycle([*expect.lifecycle_rules(), harmless], expect)
        assert (finding.status, needed) == (Status.OK, False), harmless


def test_our_own_short_abort_rule_is_a_warning_bucket_setup_replaces() -> None:
    """Written before S3_PRESIGNED_URL_EXPIRATION was raised: warn, and --apply replaces it."""
    expect = expectations(settings=SLOW_UPLOADS)
    abort, staging = expect.lifecycle_rules()
    short: dict[str, Any] = {**abort, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}
    finding, needed = evaluate_lifecycle([short, staging], expect)
    assert (finding.status, needed) == (Status.WARN, True)
    assert finding.fix == (
        "run `helppet-recordings bucket-setup --apply` to replace the package's rules"
    )


def test_a_rule_removing_expired_delete_markers_expires_no_recording() -> None:
    """ExpiredObjectDeleteMarker removes delete markers only: no current object expires."""
    expect = expectations()
    markers: dict[str, Any] = {
        "ID": "tidy-markers",
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "Expiration": {"ExpiredObjectDeleteMarker": True},
    }
    finding, needed = evaluate_lifecycle([*expect.lifecycle_rules(), markers], expect)
    assert (finding.status, needed) == (Status.OK, False)
    dated = {**markers, "Expiration": {"Date": "2030-01-01T00:00:00Z"}}
    assert evaluate_lifecycle([*expect.lifecycle_rules(), dated], expect)[0].status is Status.FAIL


def test_doctor_reads_such_rules_from_a_bucket_as_s3_returns_them() -> None:
    """On moto: the delete-marker rule is ok, the short foreign abort rule a warning."""
    expect = expectations(settings=SLOW_UPLOADS)
    theirs: list[LifecycleRuleTypeDef] = [
        {
            "ID": "tidy-markers",
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
    ]
    with moto_bucket(expect.bucket) as client:
        client.put_bucket_lifecycle_configuration(
            Bucket=expect.bucket,
            LifecycleConfiguration={"Rules": [*expect.lifecycle_rules(), *theirs]},
        )
        read = read_part(client, expect.bucket, "lifecycle")
        assert evaluate_lifecycle(read.document, expect)[0].status is Status.OK
        short: LifecycleRuleTypeDef = {
            "ID": "tidy-multipart",
            "Filter": {"Prefix": "recordings/"},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
        client.put_bucket_lifecycle_configuration(
            Bucket=expect.bucket,
            LifecycleConfiguration={"Rules": [*expect.lifecycle_rules(), *theirs, short]},
        )
        read = read_part(client, expect.bucket, "lifecycle")
        finding, needed = evaluate_lifecycle(read.document, expect)
        assert (finding.status, needed) == (Status.WARN, False)
        assert "'tidy-multipart'" in finding.message
        assert {r.part: r.action for r in apply_configuration(client, expect)}["lifecycle"] == (
            "unchanged"
        )


def test_lifecycle_rules_that_do_not_cover_everything_do_not_count() -> None:
    """A disabled rule, a tag-filtered rule or one that expires staging too early is no good."""
    expect = expectations()
    abort, staging = expect.lifecycle_rules()
    disabled = {**abort, "Status": "Disabled"}
    tagged = {**staging, "Filter": {"And": {"Prefix": expect.staging_prefix, "Tags": []}}}
    assert evaluate_lifecycle([disabled, tagged], expect)[1]
    early = {**staging, "Expiration": {"Days": 1}}
    finding, _ = evaluate_lifecycle([abort, early], expect)
    assert finding.status is Status.FAIL
    assert "before the sweeper may settle them" in finding.message


def test_our_own_short_staging_rule_is_replaced_theirs_is_not() -> None:
    """Our staging rule expiring too early is needed again; the bucket's own is left to them."""
    expect = expectations()
    abort, staging = expect.lifecycle_rules()
    ours = {**staging, "Expiration": {"Days": 1}}
    finding, needed = evaluate_lifecycle([abort, ours], expect)
    assert (finding.status, needed) == (Status.FAIL, True)
    assert (
        finding.fix
        == "run `helppet-recordings bucket-setup --apply` to replace the package's rules"
    )
    theirs = {**ours, "ID": "tidy-staging"}
    finding, needed = evaluate_lifecycle([abort, staging, theirs], expect)
    assert (finding.status, needed) == (Status.FAIL, False)
    assert finding.fix is not None
    assert "bucket-setup leaves other rules alone" in finding.fix


def test_bucket_setup_replaces_its_lifecycle_rules_when_uploads_may_take_longer() -> None:
    """After S3_PRESIGNED_URL_EXPIRATION is raised, --apply replaces ours and keeps the bucket's."""
    short = expectations()
    longer = expectations(settings=RecordingSettings(s3_presigned_url_expiration=7 * 86400))
    theirs: LifecycleRuleTypeDef = {
        "ID": "logs",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 30},
    }
    with moto_bucket(short.bucket) as client:
        apply_configuration(client, short)
        client.put_bucket_lifecycle_configuration(
            Bucket=short.bucket,
            LifecycleConfiguration={"Rules": [*short.lifecycle_rules(), theirs]},
        )
        assert evaluate_lifecycle(_lifecycle(client, short.bucket), longer)[0].status is Status.FAIL

        applied = {r.part: r.action for r in apply_configuration(client, longer)}
        assert applied["lifecycle"] == "applied"
        rules = _lifecycle(client, short.bucket)
        by_id = {rule["ID"]: rule for rule in rules}
        assert by_id["helppet-recordings-expire-staging"]["Expiration"] == {"Days": longer.days}
        assert by_id["logs"]["Expiration"] == {"Days": 30}
        assert evaluate_lifecycle(rules, longer)[0].status is Status.OK
        again = {r.part: r.action for r in apply_configuration(client, longer)}
        assert again["lifecycle"] == "unchanged"


def _lifecycle(client: S3Client, bucket: str) -> list[Mapping[str, Any]]:
    """The bucket's lifecycle rules, as S3 returns them."""
    return [
        dict(rule) for rule in client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    ]


def test_public_access_needs_all_four_settings() -> None:
    """One setting off, or no configuration at all, fails."""
    expect = expectations()
    partial = dict(expect.public_access_block()) | {"RestrictPublicBuckets": False}
    finding, needed = evaluate_public_access(partial)
    assert finding.status is Status.FAIL
    assert needed
    assert "RestrictPublicBuckets" in finding.message
    assert evaluate_public_access(None)[0].status is Status.FAIL
