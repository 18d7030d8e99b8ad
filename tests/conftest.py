"""Shared fixtures: offline, deterministic, tiny random models built from configs in code."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import functools  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@functools.cache
def _tiny(family: str):
    from hybridkv.models import tiny_random_model

    return tiny_random_model(family)


@pytest.fixture
def tiny():
    """``tiny(family)`` -> a LoadedModel, built once per session and shared (never mutated by tests)."""
    return _tiny
