"""Dynamic heads with a resident core (``dynamic_core``): every prompt token is resident or cold, never both."""

from __future__ import annotations

import pytest
import torch

from hybridkv.budget import dynamic_layout
from hybridkv.config import HybridKVConfig
from hybridkv.errors import ConfigError
from hybridkv.methods import HybridKV
from hybridkv.models.testing import synthetic_image


@pytest.mark.parametrize("chunkless", [False, True])
@pytest.mark.parametrize("core", [0.0, 0.5, 0.9])
def test_core_tokens_are_resident_and_leave_the_cold_tier(tiny, core, chunkless):
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(224, 224, seed=0)])
    method = HybridKV(
        budget=0.3, head_types="dynamic", chunk_size=8, window=8, sinks=2, dynamic_core=core, chunkless_core=chunkless
    )
    with method(loaded.model), torch.inference_mode():
        cache = method.make_cache(loaded.model, inputs)
        loaded.model.generate(**inputs, past_key_values=cache, max_new_tokens=3, do_sample=False)
    n = int(inputs["attention_mask"].sum())
    cfg = cache.ctx.config  # the layout this prompt was fitted to (short-prompt rule)
    sinks, window, chunk = cfg.sinks, cfg.kept_window, cfg.chunk_size
    for layer in cache.layers:
        heads = layer.heads
        resident = layer.hot.resident_counts(len(heads.budget[0])).tolist()
        for h, budget in enumerate(heads.budget[0]):
            lay = dynamic_layout(
                n, budget, sinks=sinks, window=window, chunk_size=chunk, core_share=core, chunkless_core=chunkless
            )
            spare = budget - sinks - window
            shared = int(core * spare)
            assert lay.core == (spare if chunkless and spare - shared < chunk else shared)
            assert resident[h] == sinks + window + lay.core  # sinks, window, core
            assert heads.cold_tokens[0][h] == lay.body == n - resident[h]  # the rest is cold, once
            assert heads.hot_tokens[0][h] <= budget


def test_core_share_is_validated():
    with pytest.raises(ConfigError, match="dynamic_core"):
        HybridKVConfig(dynamic_core=1.0)
