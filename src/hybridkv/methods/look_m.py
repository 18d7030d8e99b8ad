"""LOOK-M (arXiv 2406.18139): text-prior eviction, with the evicted KV merged into the kept KV."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class LookM(HybridKV):
    """Text-prior eviction; each evicted token is averaged into its most similar kept token (averaged merging).

    **The published method.** LOOK-M compresses a multimodal prompt's KV cache at prefill. It evicts
    text-prior: text tokens are favoured, visual tokens are ranked by the attention they receive, and a
    recent window is kept. Instead of discarding what it evicts, it merges each evicted key/value into the
    kept token whose key is most similar (cosine similarity). The paper compares several merge rules:
    averaged, pivotal and weighted merging.

    **Ours.** Every head is static with the uniform budget split. The ``text_prior`` selector keeps the
    sinks and the recent window, then every text token, then visual tokens by observation-window attention
    (no pooling), up to the budget. We use **averaged merging** (``merge="average"``). For each KV head, each
    evicted token goes to the kept token of that head with the most cosine-similar key. Each kept token's key
    and value then become the mean of its own and those of every evicted token assigned to it. The kept count,
    and so the bytes, are exactly those of plain text-prior eviction. Only the kept values change.

    **Differences.** The merge targets are all kept tokens, sinks and window included. Several evicted
    tokens that pick the same target are averaged together in one step (not one after another). Ranking
    uses the observation window rather than the attention accumulated over all queries. Like every method
    here, generated tokens go to the dense tail and are never evicted or merged.
    """

    name: ClassVar[str] = "look-m"
    defaults: ClassVar[dict[str, Any]] = {
        "head_types": "static",
        "selector": "text_prior",
        "allocator": "uniform",
        "merge": "average",
        "pooling_kernel": 1,
    }
