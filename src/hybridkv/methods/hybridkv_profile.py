"""HybridKV with offline head types: the profile decides which heads are static, not the input."""

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
