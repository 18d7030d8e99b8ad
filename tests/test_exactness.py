"""At full budget the HybridKV cache is the stock cache: same greedy tokens, logits within 1e-5 (fp32).

Checked for every family, with one image, two images and a text-only prompt, and separately with
every head forced dynamic so that every chunk is retrieved from the cold tier.
"""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from hybridkv.methods import HybridKV
from hybridkv.models import FAMILIES
from hybridkv.models.testing import synthetic_image

VLM_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "llava_onevision")
NEW_TOKENS = 6


def prompt_case(family: str, case: str):
    if case == "text":
        return "List three colours and then count from one to ten, slowly.", None
    side = {"llava_onevision": 224}.get(family, 224)
    n = 1 if case == "one_image" else 2
    return "Describe what you see.", [synthetic_image(side, side, seed=i) for i in range(n)]


def cases():
    for family in FAMILIES:
        for case in ("text", "one_image", "two_images"):
            if case != "text" and family not in VLM_FAMILIES:
                continue
            yield family, case


def greedy(model, inputs, cache):
    with torch.inference_mode():
        return model.generate(
            **inputs,
            past_key_values=cache,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )


@pytest.mark.parametrize(("family", "case"), list(cases()))
@pytest.mark.parametrize("head_types", ["static", "dynamic", "online"])
def test_full_budget_matches_dynamic_cache(tiny, family, case, head_types):
    check_full_budget(tiny, family, case, head_types)


@pytest.mark.parametrize("allocator", ["uniform", "pyramid", "adaptive", "fastv", "modality"])
def test_full_budget_is_exact_under_every_allocator(tiny, allocator):
    check_full_budget(tiny, "qwen2_5_vl", "one_image", "online", allocator=allocator)


@pytest.mark.parametrize("options", [{"token_scores": "accumulated"}, {"merge": "average"}])
def test_full_budget_is_exact_with_accumulated_scores_and_merging(tiny, options):
    check_full_budget(tiny, "qwen2_5_vl", "one_image", "online", **options)


def test_full_budget_is_exact_with_a_dynamic_core(tiny):
    check_full_budget(tiny, "qwen2_5_vl", "one_image", "dynamic", dynamic_core=0.5)


def test_full_budget_is_exact_with_summed_chunk_scoring(tiny):
    check_full_budget(tiny, "qwen2_5_vl", "one_image", "dynamic", chunk_scoring="sum")


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_full_budget_is_exact_with_image_tile_chunks(tiny, family):
    """Tiles regroup the cold tokens (partial chunks at every image edge); every chunk retrieved is still
    the stock cache. chunk_size 9: 3x3 tiles, so most images' edges leave partial tiles."""
    check_full_budget(tiny, family, "two_images", "dynamic", chunk_shape="tiles", chunk_size=9)


def last_cases():
    """One case per family: two images for the VLMs, text for the text-only models."""
    for family in FAMILIES:
        yield family, "two_images" if family in VLM_FAMILIES else "text"


@pytest.mark.parametrize(("family", "case"), list(last_cases()))
@pytest.mark.parametrize("name", ["h2o", "fastv", "look-m", "madakv", "sparsemm"])
def test_full_budget_matches_dynamic_cache_for_the_new_baselines(tiny, made_up_profile, family, case, name):
    from hybridkv.methods import get_method

    options = {}
    if name == "sparsemm":
        options["profile"] = made_up_profile(tiny(family))
    method = get_method(name, budget=1.0, chunk_size=8, window=8, sinks=2, **options)
    check_full_budget(tiny, family, case, method.config.head_types, method=method)


def check_full_budget(tiny, family, case, head_types, method=None, **options):
    loaded = tiny(family)
    prompt, images = prompt_case(family, case)
    inputs = loaded.build_inputs(prompt, images)
    text_config = loaded.adapter.text_config(loaded.model.config)
    ref = greedy(loaded.model, inputs, DynamicCache(config=text_config))

    if method is None:
        settings = {"budget": 1.0, "head_types": head_types, "chunk_size": 8, "window": 8, "sinks": 2}
        method = HybridKV(**{**settings, **options})
    with method(loaded.model):
        cache = method.make_cache(loaded.model, inputs)
        out = greedy(loaded.model, inputs, cache)

    assert torch.equal(out.sequences, ref.sequences)
    diff = max((a - b).abs().max().item() for a, b in zip(out.logits, ref.logits, strict=True))
    assert diff < 1e-5
    stats = cache.stats()
    if head_types == "dynamic":
        assert stats.cold_bytes > 0  # the chunks really came from the cold tier
        assert sum(stats.chunks_fetched_per_step) + sum(stats.chunk_hits_per_step) > 0
    if head_types == "static":
        assert stats.cold_bytes == 0
