"""Service state before and after the agent ran (`audit.service_state`), and the difference.

A snapshot maps every item of a service to a fingerprint: Postgres rows (keyed by table and primary
key, the row as JSON), Redis keys (type, a hash of the value, the start of string values) and S3 objects
(`bucket/key`, ETag and size). Each is one exec in the service container. Large services are cut at
`ITEM_LIMIT` items and the diff says so, rather than slowing every replica down.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..sandbox._base import Sandbox
from ..spec._models import Service
from . import s3
from ._base import ServiceKind
from .postgres import query

ITEM_LIMIT = 10_000
SHOWN_LIMIT = 50
"""Items of each kind (added, removed, changed) listed in the result; the counts are always complete."""


@dataclass
class Snapshot:
    items: dict[str, str] = field(default_factory=dict)
    truncated: bool = False


_POSTGRES_ROWS = f"""
SELECT n.nspname || '.' || c.relname,
  coalesce((SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey::int2[], a.attnum))
            FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = c.oid AND i.indisprimary), ''),
  query_to_xml(format('SELECT row_to_json(t)::text AS r FROM %I.%I t LIMIT {ITEM_LIMIT + 1}',
                      n.nspname, c.relname), false, true, '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1
"""
_XML_ROW = re.compile(r"<r>(.*?)</r>", re.DOTALL)


def _postgres(sandbox: Sandbox, service: Service) -> Snapshot:
    snapshot = Snapshot()
    for table, primary_key, xml in query(sandbox, service, _POSTGRES_ROWS):
        rows = [html.unescape(row) for row in _XML_ROW.findall(xml or "")]
        snapshot.truncated |= len(rows) > ITEM_LIMIT
        columns = [column for column in (primary_key or "").split(",") if column]
        for text in rows[:ITEM_LIMIT]:
            row = json.loads(text)
            if columns:
                key = ", ".join(f"{column}={json.dumps(row.get(column))}" for column in columns)
            else:  # no primary key: a row is known by its content (added or removed, never changed)
                key = "#" + hashlib.sha256(text.encode()).hexdigest()[:12]
            snapshot.items[f"{table}[{key}]"] = text
    return snapshot


_REDIS_SCRIPT = f"""
local out, cursor = {{}}, '0'
repeat
  local page = redis.call('SCAN', cursor, 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local kind = redis.call('TYPE', key)['ok']
    local print = kind .. ':' .. redis.sha1hex(redis.call('DUMP', key))
    if kind == 'string' then print = print .. ':' .. string.sub(redis.call('GET', key), 1, 64) end
    table.insert(out, key)
    table.insert(out, print)
  end
until cursor == '0' or #out > {2 * ITEM_LIMIT}
return out
"""


def _redis(sandbox: Sandbox, service: Service, kind: ServiceKind) -> Snapshot:
    port = str(kind.port(service))
    result = sandbox.service_exec(
        service.name, ["redis-cli", "-p", port, "--raw", "EVAL", _REDIS_SCRIPT, "0"]
    )
    lines = result.stdout.splitlines() if result.exit_code == 0 else []
    items = dict(zip(lines[0::2], lines[1::2], strict=False))
    return Snapshot(dict(list(items.items())[:ITEM_LIMIT]), len(items) > ITEM_LIMIT)


def snapshot(sandbox: Sandbox, service: Service, kind: ServiceKind) -> Snapshot | None:
    """The service's items now, or None for a kind whose state Keystone cannot read (http_mock, generic)."""
    if kind.name == "postgres":
        return _postgres(sandbox, service)
    if kind.name == "redis":
        return _redis(sandbox, service, kind)
    if kind.name == "s3":
        return Snapshot(*s3.inventory(sandbox, service, ITEM_LIMIT))
    return None


def state_diff(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """{"added": [...], "removed": [...], "changed": [...], "counts": {...}, "truncated": bool}; each item
    `{"item", "before"?, "after"?}`, at most SHOWN_LIMIT of each kind."""
    old, new = before.items, after.items
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(key for key in set(old) & set(new) if old[key] != new[key])
    return {
        "added": [{"item": key, "after": new[key]} for key in added[:SHOWN_LIMIT]],
        "removed": [{"item": key, "before": old[key]} for key in removed[:SHOWN_LIMIT]],
        "changed": [{"item": key, "before": old[key], "after": new[key]} for key in changed[:SHOWN_LIMIT]],
        "counts": {"added": len(added), "removed": len(removed), "changed": len(changed)},
        "truncated": before.truncated or after.truncated,
    }
