"""The doctor check ``s3.multipart``: these credentials may list unfinished multipart uploads."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from helppet_recordings.cli.bucket import BucketExpectations
from helppet_recordings.cli.doctor.multipart import check_multipart
from helppet_recordings.cli.findings import Status
from tests.support.moto_s3 import BUCKET, moto_bucket, s3v4_client

EXPECT = BucketExpectations(
    bucket=BUCKET,
    origins=(),
    recordings_prefix="recordings/",
    staging_prefix="recordings/staging/",
    days=2,
)


def test_a_bucket_whose_uploads_can_be_listed_is_ok() -> None:
    """Unfinished uploads under the prefix that can be listed (on moto): ok, naming the prefix."""
    with moto_bucket() as client:
        client.create_multipart_upload(Bucket=BUCKET, Key="recordings/a.m4a")
        finding = check_multipart(client, EXPECT)
    assert finding.status is Status.OK
    assert "'recordings/'" in finding.message


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("AccessDenied", 403, Status.FAIL),
        ("", 403, Status.FAIL),
        ("NotImplemented", 501, Status.WARN),
    ],
)
def test_a_refusal_fails_with_the_permissions_to_grant(
    code: str, status: int, expected: Status
) -> None:
    """403 is a failure whose fix names the three actions; another answer cannot be judged."""
    client = s3v4_client()
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "list_multipart_uploads", service_error_code=code, http_status_code=status
        )
        finding = check_multipart(client, EXPECT)
    assert finding.status is expected
    if expected is Status.FAIL:
        assert finding.fix is not None
        for action in (
            "s3:ListBucketMultipartUploads",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        ):
            assert action in finding.fix
    else:
        assert finding.message == f"could not check: ListMultipartUploads answered {code}"


def test_an_unreachable_endpoint_is_a_warning() -> None:
    """No answer at all is a warning that says why, not a traceback."""
    client = s3v4_client()
    client.meta.events.register_first("before-send.s3.ListMultipartUploads", _refuse_to_connect)
    finding = check_multipart(client, EXPECT)
    assert finding.status is Status.WARN
    assert finding.message.startswith("could not check: ")


def _refuse_to_connect(**_kwargs: object) -> None:
    from botocore.exceptions import EndpointConnectionError  # noqa: PLC0415

    raise EndpointConnectionError(endpoint_url="https://s3.invalid")
