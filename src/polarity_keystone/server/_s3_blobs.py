"""Blobs as objects of an S3-compatible bucket (AWS, MinIO, R2, moto), so several servers share them.

Credentials and the region come from boto3's usual sources (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION, a profile); `endpoint` points at a server other than AWS. The bucket must exist.
An S3 PUT replaces an object whole, so two servers storing the same blob at once cannot corrupt it.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from ._blobs import S3Location


class S3BlobStore:
    def __init__(self, location: S3Location, endpoint: str | None) -> None:
        self.location = location
        self._client: Any = boto3.client("s3", endpoint_url=endpoint)

    def _object(self, digest: str) -> dict[str, str]:
        return {"Bucket": self.location.bucket, "Key": f"{self.location.prefix}{digest[:2]}/{digest}"}

    def put(self, digest: str, data: bytes) -> None:
        self._client.put_object(**self._object(digest), Body=data)

    def get(self, digest: str) -> bytes:
        try:
            answer = self._client.get_object(**self._object(digest))
        except ClientError as error:
            if _missing(error):
                raise FileNotFoundError(f"no blob {digest} in s3://{self.location.bucket}") from error
            raise
        data: bytes = answer["Body"].read()
        return data

    def exists(self, digest: str) -> bool:
        try:
            self._client.head_object(**self._object(digest))
        except ClientError as error:
            if _missing(error):
                return False
            raise
        return True

    def delete(self, digest: str) -> None:
        self._client.delete_object(**self._object(digest))  # S3 answers 204 for a missing key too


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")
