"""What every compression method provides: a cache for one batch of inputs, and a scope to run it in."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import Cache


@dataclass
class Method:
    """Base of the method registry, in the spirit of kvpress presses.

    Usage::

        method = HybridKV(budget=0.1)
        with method(model):
            cache = method.make_cache(model, inputs)
            model.generate(**inputs, past_key_values=cache)
    """

    name: ClassVar[str] = "method"
    needs_profile: ClassVar[bool] = False
    """True for methods that cannot run without a head profile (``profile=`` / ``--profile``)."""

    def make_cache(self, model: PreTrainedModel, inputs: Mapping[str, torch.Tensor] | None = None) -> Cache:
        raise NotImplementedError

    @contextmanager
    def __call__(self, model: PreTrainedModel) -> Iterator[PreTrainedModel]:
        """Scope in which ``model`` can run this method's caches (no-op for methods that need none)."""
        yield model

    def describe(self) -> dict[str, Any]:
        """Options to record next to results."""
        return {"method": self.name}
