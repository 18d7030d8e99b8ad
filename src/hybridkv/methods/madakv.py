"""MadaKV (ACL 2025, arXiv 2506.15724): modality-adaptive KV eviction with cross-layer compensation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class MadaKV(HybridKV):
    """Each head's budget split between text and visual tokens by its attention; unused budget moves down layers.

    **The published method.** MadaKV observes that attention heads prefer different modalities, and that
    this preference varies by head and by task. *Modality preference adaptation* senses each head's
    preference from its attention and retains the critical tokens of each modality accordingly.
    *Hierarchical compression compensation* makes up across layers for what the per-layer compression
    leaves out.

    **Ours, built from that description.** Every layer starts from the uniform split of the budget
    (``allocator="modality"``). Per KV head, the preference is the share of the observation window's
    attention that lands on visual tokens, among the tokens that compete. The sinks and the recent window
    are excluded, as they are always kept and attention sinks would swamp the share. The head keeps
    the sinks and the window. Its remaining budget is split between the modalities in proportion to that
    share, and within each modality the tokens with the highest pooled window attention are kept (SnapKV
    ranking). Compensation works as follows. When a head's share of a modality exceeds the tokens of that
    modality, the rest is carried to the next layer and spread evenly over its heads (what that layer cannot
    hold moves on). The carry is bounded by what the later layers can still hold beyond their own budgets.
    What no later layer can use goes back to the same head's other modality, so the last layer spends
    everything.

    **Budget.** The tokens kept over all layers and heads equal ``num_layers x H_kv x budget`` exactly.
    A single head may keep more than the budget when it received carried budget. ``stats()`` reports each
    head's own budget.

    **Simplifications.** The paper's exact preference estimator and compensation schedule are not
    reproduced. We use the window's attention shares and an even carry to the following layers. Heads of
    a layer share the base budget evenly; there is no head-level competition as in AdaKV. Decode-time
    eviction is not done: generated tokens go to the dense tail.
    """

    name: ClassVar[str] = "madakv"
    defaults: ClassVar[dict[str, Any]] = {"head_types": "static", "selector": "attention", "allocator": "modality"}
