"""HybridKV variants driven by a head profile: offline head types, and a layer level with input-adaptive shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .hybridkv import HybridKV


@dataclass(init=False)
class HybridKVProfile(HybridKV):
    """Head types fixed by a calibration profile (``hybridkv profile``), budgets still split per input.

    The paper classifies every input online; a profile makes the types stable across inputs and saves the
    per-input classification, at the cost of ignoring heads whose behaviour depends on the input (the
    profile's flip rate says how many). Needs ``profile=load_profile(...)`` / ``--profile FILE``.
    """

    name: ClassVar[str] = "hybridkv-profile"
    needs_profile: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {"classify": "profile"}


@dataclass(init=False)
class HybridKVAdaptive(HybridKV):
    """HybridKV with a model -> layer level on top and input-adaptive layer shares (ours, beyond the paper).

    Each layer's share of the budget comes from the profile (layers whose heads spread their attention get
    more), and shrinks for a prompt that is simpler (more concentrated) at that layer than the calibration
    set was: the budget becomes a ceiling. Needs ``profile=load_profile(...)`` / ``--profile FILE``.
    """

    name: ClassVar[str] = "hybridkv-adaptive"
    needs_profile: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {"layer_level": "adaptive"}
