"""The `s3_object` check: reads one object of an `s3` service through the S3 API inside the service's
container; the evidence keeps the object's size, an excerpt, and the bucket's first keys."""

from __future__ import annotations

import re
from typing import Any

from ..services import S3Error, s3
from ..spec import S3ObjectCheck
from ._checks import CheckContext, Outcome, _excerpt, register


@register("s3_object")
def _s3_object(check: S3ObjectCheck, ctx: CheckContext) -> Outcome:
    service = ctx.services.get(check.service)
    where = f"s3://{check.bucket}/{check.key}"
    evidence: dict[str, Any] = {"service": check.service, "bucket": check.bucket, "key": check.key}
    if service is None:
        return Outcome(False, f"service {check.service!r} is not declared", evidence)
    try:
        content = s3.get_object(ctx.sandbox, service, check.bucket, check.key)
        listing = s3.list_keys(ctx.sandbox, service, check.bucket, s3.LISTING_LIMIT)
    except S3Error as exc:
        return Outcome(False, f"{exc}: {exc.output}", {**evidence, "error": exc.output})
    if listing is None:
        evidence["bucket_exists"] = False
    else:
        keys, more = listing
        evidence["bucket_listing"] = keys + (["..."] if more else [])
    if content is None:
        missing = "bucket does not exist" if listing is None else "object does not exist"
        return Outcome(not check.exists, f"{where}: {missing}", {**evidence, "exists": False})
    text = content.decode("utf-8", errors="replace")
    evidence.update(exists=True, size=len(content), content=_excerpt(text))
    if not check.exists:
        return Outcome(False, f"{where} exists ({len(content)} bytes), expected it to be absent", evidence)
    problems = []
    if check.contains is not None and check.contains not in text:
        problems.append(f"does not contain {check.contains!r}")
    if check.equals is not None and text != check.equals:
        problems.append(f"is not equal to {_excerpt(check.equals)!r}")
    if check.pattern is not None and not re.search(check.pattern, text, re.MULTILINE):
        problems.append(f"does not match /{check.pattern}/")
    asked = (check.contains, check.equals, check.pattern) != (None, None, None)
    summary = "; ".join(problems) if problems else ("matches" if asked else "exists")
    return Outcome(not problems, f"{where} ({len(content)} bytes) {summary}", evidence)
