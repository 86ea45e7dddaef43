"""Presigned POST policies for one bucket, with the bucket's endpoint resolved once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import botocore.signers
import botocore.utils

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class PostSigner:
    """Presigns POST policies for one bucket, resolving the bucket's endpoint only once.

    ``generate_presigned_post`` resolves the S3 endpoint rules for the bucket
    on every call, which is about two thirds of its cost; the result depends
    only on the bucket and the client, so it is resolved once here and each
    ticket is signed by botocore's own ``S3PostPresigner`` with the client's
    request signer (which fetches fresh credentials on every signature). The
    resolution uses botocore internals; if they are not what this code
    expects, every ticket goes through the public ``generate_presigned_post``
    instead. Both paths produce the same URL, fields and policy (tested).
    """

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket
        self._request: dict[str, Any] | None = None
        self._presigner: botocore.signers.S3PostPresigner | None = None
        try:
            self._request = self._resolve_request()
            self._presigner = botocore.signers.S3PostPresigner(client._request_signer)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - any surprise in botocore internals: use the public path
            self._request = None

    @property
    def cached(self) -> bool:
        """Whether tickets are signed with the resolved endpoint (the fast path)."""
        return self._request is not None

    def _resolve_request(self) -> dict[str, Any]:
        # The same steps as botocore's generate_presigned_post, done once per bucket.
        client: Any = self._client
        context = {
            "is_presign_request": True,
            "use_global_endpoint": botocore.signers._should_use_global_endpoint(client),  # type: ignore[attr-defined]
        }
        operation = client.meta.service_model.operation_model("CreateBucket")
        params = client._emit_api_params(
            api_params={"Bucket": self._bucket}, operation_model=operation, context=context
        )
        endpoint_url, headers, _ = client._resolve_endpoint_ruleset(
            operation,
            params,
            context,
            ignore_signing_region=not botocore.utils.ArnParser.is_arn(self._bucket),
        )
        request: dict[str, Any] = client._convert_to_request_dict(
            api_params=params,
            operation_model=operation,
            endpoint_url=endpoint_url,
            context=context,
            headers=headers,
            set_user_agent_header=False,
        )
        return request

    def sign(
        self, *, key: str, fields: dict[str, str], conditions: list[Any], expires_in: int
    ) -> Mapping[str, Any]:
        """Return ``{"url": ..., "fields": ...}`` exactly as ``generate_presigned_post`` does."""
        if self._request is None or self._presigner is None:
            return self._client.generate_presigned_post(
                Bucket=self._bucket,
                Key=key,
                Fields=fields,
                Conditions=conditions,
                ExpiresIn=expires_in,
            )
        cached = self._request
        request = {  # signing writes into the context and headers: give it fresh ones
            **cached,
            "headers": dict(cached["headers"]),
            "context": {
                name: dict(value) if isinstance(value, dict) else value
                for name, value in cached["context"].items()
            },
        }
        post: Mapping[str, Any] = self._presigner.generate_presigned_post(
            request_dict=request,
            fields={**fields, "key": key},
            conditions=[*conditions, {"bucket": self._bucket}, {"key": key}],
            expires_in=expires_in,
        )
        return post
