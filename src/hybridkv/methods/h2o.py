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
    split, no pooling). While decoding (``evict_during_decode``), each step's queries add their attention to
    the kept tokens' scores, and each head evicts its lowest-scoring kept prompt token for every new token,
    so it stays at its budget (:mod:`hybridkv.cache.decode_eviction`).

    **Differences.** Generated tokens are never evicted (they are the recent part; answers here are short),
    so a head's prompt tokens shrink to its sinks before the cache grows past the budget. At prefill the
    recent part is the ``window`` (16 tokens by default), not half the budget; pass ``window=`` to change it.
    Sinks are kept as in every method here. A session's ``crop`` removes generated tokens but does not bring
    evicted prompt tokens back.
    """

    name: ClassVar[str] = "h2o"
    defaults: ClassVar[dict[str, Any]] = {
        "head_types": "static",
        "selector": "attention",
        "allocator": "uniform",
        "token_scores": "accumulated",
        "pooling_kernel": 1,
        "evict_during_decode": True,
    }
