"""SparseMM (arXiv 2506.05344) / HeadKV in spirit: per-head budgets from an offline head profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class SparseMM(HybridKV):
    """Head budgets in proportion to each head's visual attention in a profile (uniform floor), SnapKV inside.

    **The published method.** SparseMM finds that few attention heads ("visual heads") respond to visual
    content. It scores every head offline, on a calibration set, by how often the head's attention lands on
    the image region that matches the token being generated. It then splits the KV budget over all heads of
    the model in three parts: a local window, a uniform part, and a part in proportion to the head scores.
    Each head selects its tokens SnapKV-style. HeadKV does the same with retrieval and reasoning scores of
    text heads.

    **Ours.** The scores come from a ``HeadProfile`` (``hybridkv profile``; pass ``profile=`` or ``--profile``).
    A head's score is its ``visual_mass``: the mean share of its attention, over the first decode steps of
    the calibration inputs, that lands on visual prompt tokens. Every KV head of the model first gets
    ``uniform_share`` (default 0.2) of the per-head budget, and never less than sinks + window. The rest of
    the model's budget (``num_layers x H_kv x budget``) goes to the heads in proportion to their scores,
    each capped at the prompt (``allocator="profile"``). Inside a head, the sinks, the recent window, and
    then the tokens with the highest pooled observation-window attention are kept (``selector="attention"``,
    as SnapKV).

    **Differences.** The head score is the share of visual attention, not SparseMM's grounded-OCR hit
    rate: a head that looks at the image anywhere scores, whether or not it looks at the right place.
    Budgets are split across the whole model, as SparseMM and HeadKV do, so single layers may get more or
    less than the budget; the model's total is exact. Without a profile the method raises a ``ConfigError``
    that names the fix.
    """

    needs_profile: ClassVar[bool] = True
    name: ClassVar[str] = "sparsemm"
    defaults: ClassVar[dict[str, Any]] = {"head_types": "static", "selector": "attention", "allocator": "profile"}
