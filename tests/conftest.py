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


@pytest.fixture(scope="module")
def loaded():
    """The embedded model's architecture with random weights (seed 0), built afresh for each test module
    (training tests may change its weights)."""
    from hybridkv.embedded.model import build_untrained

    return build_untrained(seed=0)


@pytest.fixture
def tiny():
    """``tiny(family)`` -> a LoadedModel, built once per session and shared (never mutated by tests)."""
    return _tiny


def made_up_profile_of(loaded, visual_mass: torch.Tensor | None = None):
    """A head profile of ``loaded`` (its real fingerprint) with made-up arrays: every other head static, a
    seeded random visual mass unless ``visual_mass`` [layers, KV heads] is given."""
    from hybridkv.profile import HeadProfile, model_fingerprint

    text_config = loaded.adapter.text_config(loaded.model.config)
    shape = (text_config.num_hidden_layers, text_config.num_key_value_heads)
    zeros = torch.zeros(shape)
    if visual_mass is None:
        visual_mass = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    return HeadProfile(
        fingerprint=model_fingerprint(loaded.model),
        score_name="text_topk",
        theta=0.9,
        score_mean=zeros,
        score_var=zeros,
        static_rate=(torch.arange(zeros.numel()).reshape(shape) % 2).float(),
        flip_rate=zeros,
        topk_overlap=zeros,
        calib={"source": "test"},
        library_version="test",
        visual_mass=visual_mass,
    )


@pytest.fixture
def made_up_profile():
    """``made_up_profile(loaded, visual_mass=None)`` -> a HeadProfile for methods that need one (sparsemm,
    hybridkv-profile) where the profile's values do not matter to the test."""
    return made_up_profile_of
