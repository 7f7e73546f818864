"""Sending a spec's local files to a server as a bundle: only the blobs it does not hold yet."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..spec import Bundle, read_regular
from ._http import HttpClient

log = logging.getLogger("polarity_keystone.sdk")


@dataclass(frozen=True)
class BundleUpload:
    """What one upload of a spec's bundle sent (`ks.specs.last_bundle`)."""

    digest: str
    files: int
    total_bytes: int
    """The size of every file of the bundle."""
    blobs_sent: int
    bytes_sent: int
    """The size of the blobs the server lacked, the only ones sent."""


def send_blobs(http: HttpClient, bundle: Bundle) -> BundleUpload:
    """Ask the server which of the bundle's blobs it lacks and upload those."""
    missing = http.json("POST", "/v1/blobs/missing", json={"digests": sorted(bundle.sources)})["missing"]
    sent = 0
    for digest in missing:
        content = read_regular(bundle.sources[digest])
        http.request(
            "PUT",
            f"/v1/blobs/{digest}",
            content=content,
            headers={"Content-Type": "application/octet-stream"},
        )
        sent += len(content)
    upload = BundleUpload(
        digest=bundle.digest,
        files=len(bundle.manifest),
        total_bytes=sum(entry.size for entry in bundle.manifest.values()),
        blobs_sent=len(missing),
        bytes_sent=sent,
    )
    log.info(
        "bundle %s: %d files (%d bytes), sent %d blobs (%d bytes)",
        upload.digest[:12],
        upload.files,
        upload.total_bytes,
        upload.blobs_sent,
        upload.bytes_sent,
    )
    return upload
