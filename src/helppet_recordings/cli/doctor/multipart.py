"""``s3.multipart``: these credentials may list the bucket's unfinished multipart uploads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from helppet_recordings.cli.doctor._common import _finding, _first_line
from helppet_recordings.cli.findings import Finding, Status

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from helppet_recordings.cli.bucket import BucketExpectations

_REFUSED: Final = frozenset({"AccessDenied", "AllAccessDisabled", "UnauthorizedOperation"})
_FIX: Final = (
    "grant s3:ListBucketMultipartUploads on the bucket, and s3:AbortMultipartUpload and "
    "s3:ListMultipartUploadParts on its objects"
)


def check_multipart(client: S3Client, expect: BucketExpectations) -> Finding:
    """List one unfinished multipart upload under the recordings prefix.

    The sweeper and ``reconcile`` list them to abort what no upload waits for,
    and resumable uploads need the same family of permissions; a role without
    them fails every resumable completion and logs a warning on every sweep.
    """
    import botocore.exceptions  # noqa: PLC0415

    try:
        client.list_multipart_uploads(
            Bucket=expect.bucket, Prefix=expect.recordings_prefix, MaxUploads=1
        )
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _REFUSED or status == 403:
            return _finding(
                "s3.multipart",
                Status.FAIL,
                f"these credentials may not list multipart uploads ({code or status}): "
                "resumable uploads fail and the sweeper cannot abort abandoned ones",
                _FIX,
            )
        return _finding(
            "s3.multipart",
            Status.WARN,
            f"could not check: ListMultipartUploads answered {code or status}",
        )
    except botocore.exceptions.BotoCoreError as exc:
        return _finding("s3.multipart", Status.WARN, f"could not check: {_first_line(exc)}")
    return _finding(
        "s3.multipart",
        Status.OK,
        f"unfinished multipart uploads under '{expect.recordings_prefix}' can be listed",
    )
