"""The reference: transformers' own DynamicCache, uncompressed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers import DynamicCache, PreTrainedModel

from .base import Method


@dataclass
class FullCache(Method):
    """The reference: transformers' DynamicCache, nothing evicted."""

    name: ClassVar[str] = "full"

    def make_cache(self, model: PreTrainedModel, inputs: Mapping[str, torch.Tensor] | None = None) -> DynamicCache:
        from ..models import get_adapter

        return DynamicCache(config=get_adapter(model).text_config(model.config))
