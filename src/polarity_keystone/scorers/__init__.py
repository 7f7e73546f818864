"""Client-side scorers: `Scorer`, `Score` and the seed's scorer families.

Layered just under the SDK: they never load the engine, sandboxes or Docker; the judge scorers call
the model through `polarity_keystone.judge`.
"""

from ._base import DEFAULT_PASS_THRESHOLD, Case, Score, Scorer

__all__ = ["DEFAULT_PASS_THRESHOLD", "Case", "Score", "Scorer"]
