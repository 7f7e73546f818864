"""Which of a spec's local files changed since the run a replay was refused for.

The run's fingerprint pins the digest of the bundle its files were uploaded as, and the server it ran on
(the one KEYSTONE_BASE_URL names, else the embedded one under `.keystone/`, as for `ks eval run`) holds
that bundle's manifest: the run is found among the spec's latest experiments on that server by its
fingerprint id, and its manifest is compared with the files here, path by path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice

from ..engine import fingerprint_id
from ..sdk import Keystone, KeystoneError, SpecBundle, SpecBundleFile
from ..spec import Bundle, Manifest
from ._served import EMBEDDED_DIR

SHOWN = 20
"""Paths named in the refusal; the rest are counted."""
SEARCHED = 50
"""The spec's latest experiments searched for the refused run, so an old run costs a bounded search."""


def files_note(spec_id: str, fingerprint: str | None, files: Bundle) -> str:
    """What a refused replay says of the spec's local files (`files`): the paths that differ from those of
    the run with `fingerprint` (at most SHOWN, then how many more), that none do, or, when that run's
    bundle cannot be had (no fingerprint differs, no server to ask, the run not on it, or a run without
    local files), only that the fingerprint pins them."""
    original = run_bundle(spec_id, fingerprint) if fingerprint else None
    if original is None:
        return (
            f"(the fingerprint pins the spec's {len(files.manifest)} local files, bundle {files.digest[:12]} "
            "now: a changed agent, fixture or check file also changes it)"
        )
    if original.digest == files.digest:
        return f"(the spec's {len(files.manifest)} local files are those of that run: something else changed)"
    return (
        f"the spec's local files changed since that run: {describe(original.files, files.manifest)}. "
        "Restore them, or pass --force to replay anyway."
    )


def run_bundle(spec_id: str, fingerprint: str) -> SpecBundle | None:
    """The bundle of the run with `fingerprint`, found among the spec's latest experiments on the server."""
    try:
        with _server() as ks:
            if ks is None:
                return None
            for experiment in islice(ks.experiments.iter_all(spec_id=spec_id), SEARCHED):
                if "bundle" not in experiment.options:
                    continue
                recorded = ks.experiments.get(experiment.id).fingerprint
                if "bundle" in recorded and fingerprint_id(recorded) == fingerprint:
                    return ks.specs.bundle(recorded["bundle"])
    except KeystoneError:
        return None
    return None


def describe(original: dict[str, SpecBundleFile], local: Manifest) -> str:
    """Each path whose content or mode differs (`changed`), that is new (`added`) or gone (`removed`), in
    path order, the first SHOWN of them."""
    changes = []
    for path in sorted({*original, *local}):
        before, now = original.get(path), local.get(path)
        if before is None:
            changes.append(f"{path} added")
        elif now is None:
            changes.append(f"{path} removed")
        elif (before.sha256, before.mode) != (now.sha256, now.mode):
            changes.append(f"{path} changed")
    shown = ", ".join(changes[:SHOWN])
    return shown + (f" and {len(changes) - SHOWN} more" if len(changes) > SHOWN else "")


@contextmanager
def _server() -> Iterator[Keystone | None]:
    """A client of the server the run would have been on; None when there is none: no embedded store
    here is never created just to be searched."""
    base_url = os.environ.get("KEYSTONE_BASE_URL")
    if not base_url and not EMBEDDED_DIR.is_dir():
        yield None
        return
    ks = Keystone(base_url=base_url) if base_url else Keystone.local(EMBEDDED_DIR)
    try:
        yield ks
    finally:
        ks.close()
