"""The cache takes its head types from an offline profile (classify=profile) or uses it as a prior (blend)."""

from __future__ import annotations

import pytest
import torch

from hybridkv.errors import ConfigError
from hybridkv.methods import HybridKV
from hybridkv.models.testing import synthetic_image
from hybridkv.profile import ProfileError
from hybridkv.profiling import CalibItem, profile_model


@pytest.fixture
def profiled(tiny):
    loaded = tiny("qwen2_5_vl")
    items = [
        CalibItem(prompt=f"What is shown, part {i}?", images=(synthetic_image(224, 224, seed=i),)) for i in range(2)
    ]
    probe = profile_model(loaded, items, theta=0.9, decode_steps=2)
    theta = float(probe.score_mean.flatten().sort().values[probe.score_mean.numel() // 2])  # split the heads
    return loaded, profile_model(loaded, items, theta=theta, decode_steps=2)


def run(loaded, inputs, **options):
    method = HybridKV(budget=0.2, **options)
    with method(loaded.model), torch.inference_mode():
        cache = method.make_cache(loaded.model, inputs)
        loaded.model.generate(**inputs, past_key_values=cache, max_new_tokens=3, do_sample=False)
    return torch.tensor([layer.static for layer in cache.stats().heads])[:, 0]  # [layers, kv_heads]


def test_profile_mode_uses_the_profile_types(profiled):
    loaded, profile = profiled
    inputs = loaded.build_inputs("Something else entirely?", [synthetic_image(280, 224, seed=9)])
    types = run(loaded, inputs, classify="profile", profile=profile, theta=profile.theta)
    assert torch.equal(types, profile.static_types())
    assert 0 < int(types.sum()) < types.numel()


def test_blend_with_huge_margin_keeps_the_prior_and_zero_margin_is_online(profiled):
    loaded, profile = profiled
    inputs = loaded.build_inputs("Another question?", [synthetic_image(224, 280, seed=5)])
    kept = run(loaded, inputs, classify="blend", profile=profile, theta=profile.theta, margin=1.0)
    assert torch.equal(kept, profile.static_types())
    online = run(loaded, inputs, classify="online", theta=profile.theta)
    blended = run(loaded, inputs, classify="blend", profile=profile, theta=profile.theta, margin=0.0)
    assert torch.equal(online, blended)


def test_profile_of_another_model_fails_before_any_work(profiled, tiny):
    _, profile = profiled
    other = tiny("qwen2_vl")
    with pytest.raises(ProfileError, match="measured on"):
        HybridKV(budget=0.2, classify="profile", profile=profile).make_cache(other.model, None)


def test_profile_modes_need_a_profile():
    with pytest.raises(ConfigError, match="--profile"):
        HybridKV(classify="blend")
