"""FastV (arXiv 2403.06764) as a KV-cache method: visual tokens dropped from the cache after layer K."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class FastV(HybridKV):
    """FastV-style: full KV below layer K, then text plus the visual tokens layer K-1 attends to most.

    **The published method.** FastV ranks the image tokens by the attention they receive at layer K-1
    (K = 2 in the paper), averaged over heads and over the queries, and drops the lowest-ranked R% of them
    from every later layer. Dropping happens *inside the prefill*: layers >= K never compute those tokens,
    which is where FastV's speed-up comes from.

    **Ours.** Layers below ``fastv_layer`` (K, default 2) keep their full KV. Layer K-1 ranks the prompt
    tokens once by the attention of the observation window (the prompt's last ``window`` queries), averaged
    over its heads; every later layer and KV head uses that one ranking. A later layer keeps the sinks and
    the recent window, then every text token, then visual tokens in ranking order, up to its budget; when
    text alone exceeds the budget, the most recent text tokens are kept (``selector="fastv"``).

    **Budget.** Equal budget over the whole model (``allocator="fastv"``): the mean over layers of the
    tokens kept per KV head equals the budget, so layers >= K keep ``(N * budget - K * L) / (N - K)`` each
    to pay for the K full layers. When K full layers alone exceed the model's budget, the later layers keep
    the floor (sinks + window) and the mean is above the budget; ``stats()`` reports what was kept.

    **Differences.** Real FastV also removes the dropped tokens from the later layers' prefill computation;
    a KV-cache method cannot change the prefill, so ours prunes the cache only (prefill is exact and as
    slow as the full model's). The ranking uses the observation window rather than every query, and a
    budget replaces FastV's drop ratio R.
    """

    name: ClassVar[str] = "fastv"
    defaults: ClassVar[dict[str, Any]] = {
        "head_types": "static",
        "selector": "fastv",
        "allocator": "fastv",
        "pooling_kernel": 1,
    }
