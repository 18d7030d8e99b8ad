"""H2O (arXiv 2306.14048): heavy hitters by attention accumulated over every query, plus recent tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class H2O(HybridKV):
    """Sinks + recent window + the tokens with the highest attention accumulated over all prompt queries.

    **The published method.** H2O ("Heavy-Hitter Oracle") keeps a fixed-size cache made of the most recent
    tokens and the "heavy hitters": the tokens whose attention, summed over every query so far, is
    highest. H2O applies the rule greedily at every step: at prefill, and again at each decode step, where
    one token is evicted whenever the cache is full. The paper's experiments split the budget evenly
    between recent tokens and heavy hitters.

    **Ours.** At prefill, every KV head scores each prompt token by the causal attention it receives from
    *every* prompt query (``token_scores="accumulated"``), summed over the query heads of its group. The
    queries are processed in blocks, so the L x L map is never materialised. The head keeps the sinks, the
    recent ``window``, then the highest-scoring tokens up to its budget (``selector="attention"``, uniform
    split, no pooling). Scores are divided by the number of queries; this does not change the ranking.

    **Differences.** There is no decode-time re-eviction: generated tokens go to the dense tail shared by
    every method and are never evicted, so the cache grows by one token per step, as with every method here.
    The recent part is the ``window`` (16 tokens by default), not half the budget; pass ``window=`` to change
    it. Sinks are kept as in every method here.
    """

    name: ClassVar[str] = "h2o"
    defaults: ClassVar[dict[str, Any]] = {
        "head_types": "static", "selector": "attention", "allocator": "uniform", "token_scores": "accumulated",
        "pooling_kernel": 1,
    }
