"""What changed between a baseline run and the candidate, besides the agent: the spec (by meaning, from
the semantic fingerprint: which invariants and forbidden rules, by name, and which other parts), the
scenarios, the services' images.

The agent (its code digest, the image it runs in, git fixtures' commits) is what the gate compares, so
differences there are only noted. A changed spec or service image makes the runs less alike, but they are
still compared scenario by scenario; only `strict-baselines` refuses them.

Results written before the semantic fingerprint existed carry only `spec_sha256`, the hash of the raw
text: when it differs, the spec may or may not have changed in meaning, and what changed is unknown.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..results import RunResults
from ..spec import PARTS_KEY, SEMANTIC_KEY, SEMANTIC_KEYS

RAW_SPEC_KEY = "spec_sha256"
COMPARED_KEYS = frozenset({RAW_SPEC_KEY, "service_images", *SEMANTIC_KEYS})
"""Fingerprint keys that SpecChanges judges; differences in any other key are noted as they are."""


class SpecChanges(BaseModel):
    spec_changed: bool = False
    """The spec differs in meaning (or, against a baseline without a semantic fingerprint, in text)."""
    unknown: bool = False
    """The spec's text differs from a baseline that predates the semantic fingerprint: what changed in
    it cannot be told."""
    invariants_added: list[str] = Field(default_factory=list)
    invariants_removed: list[str] = Field(default_factory=list)
    invariants_changed: list[str] = Field(default_factory=list)
    forbidden_changed: list[str] = Field(default_factory=list)
    """Forbidden rules added, removed or changed."""
    sections: list[str] = Field(default_factory=list)
    """Other top-level parts of the spec that changed (task, agent, setup, parallelism, ...)."""
    scenarios_added: list[str] = Field(default_factory=list)
    """Judged by absolute rules only (thresholds, forbidden rules, gate invariants): no baseline."""
    scenarios_removed: list[str] = Field(default_factory=list)
    service_images: list[str] = Field(default_factory=list)
    """Services whose image differs (or that only one run has)."""

    @property
    def refusable(self) -> bool:
        """What strict-baselines refuses: the runs did not test the same thing."""
        return self.spec_changed or bool(self.service_images)

    @property
    def any(self) -> bool:
        return self.refusable or bool(self.scenarios_added or self.scenarios_removed)

    @property
    def fresh_invariants(self) -> set[str]:
        """Invariants whose baseline figures say nothing about them now (new or redefined)."""
        return {*self.invariants_added, *self.invariants_changed}

    def describe(self) -> str:
        """One line, e.g. `spec changed since the baseline: invariants changed: tidy; scenarios added: b
        (judged by thresholds only)`."""
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("invariants changed", self.invariants_changed),
                ("invariants added", self.invariants_added),
                ("invariants removed", self.invariants_removed),
                ("forbidden rules changed", self.forbidden_changed),
                ("also changed", self.sections),
                ("scenarios added (judged by thresholds only)", self.scenarios_added),
                ("scenarios removed", self.scenarios_removed),
                ("service images changed", self.service_images),
            )
            if names
        ]
        if self.unknown:
            parts.insert(
                0,
                "its text differs from a baseline older than semantic fingerprints (what changed is unknown)",
            )
        subject = "spec changed" if self.spec_changed else "runs differ"
        return f"{subject} since the baseline: " + "; ".join(parts or ["formatting aside, nothing named"])


def _diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(added, removed, changed) keys of two name -> hash maps."""
    added = [name for name in after if name not in before]
    removed = [name for name in before if name not in after]
    changed = [name for name in after if name in before and before[name] != after[name]]
    return added, removed, changed


def _spec_changes(before: dict[str, Any], after: dict[str, Any], changes: SpecChanges) -> None:
    if SEMANTIC_KEY in before and SEMANTIC_KEY in after:
        changes.spec_changed = before[SEMANTIC_KEY] != after[SEMANTIC_KEY]
    elif RAW_SPEC_KEY in before and RAW_SPEC_KEY in after:
        changes.spec_changed = changes.unknown = before[RAW_SPEC_KEY] != after[RAW_SPEC_KEY]
    if not changes.spec_changed or changes.unknown:
        return
    old, new = before.get(PARTS_KEY, {}), after.get(PARTS_KEY, {})
    changes.invariants_added, changes.invariants_removed, changes.invariants_changed = _diff(
        old.get("invariants", {}), new.get("invariants", {})
    )
    changes.forbidden_changed = _differing(old.get("forbidden", {}), new.get("forbidden", {}))
    changes.sections = _differing(old.get("sections", {}), new.get("sections", {}))


def _differing(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Keys added, removed or changed, in order."""
    return sorted(set().union(*_diff(before, after)))


def compare_runs(baseline: RunResults, candidate: RunResults) -> tuple[SpecChanges, list[str]]:
    """What changed between the two runs, and the notes for the other fingerprint differences (keys
    missing on either side, from older results or a partial run, are not compared)."""
    before, after = baseline.fingerprint, candidate.fingerprint
    changes = SpecChanges()
    _spec_changes(before, after, changes)
    if "service_images" in before and "service_images" in after:
        changes.service_images = _differing(before["service_images"], after["service_images"])
    ran_before = [s.scenario_id for s in baseline.scenarios]
    ran_now = [s.scenario_id for s in candidate.scenarios]
    changes.scenarios_added = [sid for sid in ran_now if sid not in ran_before]
    changes.scenarios_removed = [sid for sid in ran_before if sid not in ran_now]
    noted = [
        f"changed since the baseline: {key}: {_short(before[key])} -> {_short(after[key])}"
        for key in sorted((set(before) & set(after)) - COMPARED_KEYS)
        if before[key] != after[key]
    ]
    return changes, noted


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
