"""Selection at question time (``select_at="question"``): in a session the context waits whole in the cold
tier, each question's own queries classify the heads and choose what static heads keep, and the context
is parked whole again for the next question."""

from __future__ import annotations

import pytest
import torch

from conftest import made_up_profile_of
from hybridkv import Session
from hybridkv.cache import HybridCache, Phase
from hybridkv.config import HybridKVConfig
from hybridkv.errors import CacheStateError, ConfigError
from hybridkv.methods import METHODS, get_method
from hybridkv.models.testing import synthetic_image


def _layer_cache(config: HybridKVConfig, *, park: bool) -> HybridCache:
    cache = HybridCache(1, config)
    if park:
        cache.select_at_question()
    return cache


def _kept_keys(layer) -> torch.Tensor:
    return layer.hot.keys[: layer.hot.n_resident]


def test_the_question_chooses_what_a_static_head_keeps():
    # 40 prompt keys, one of which (position 23) the question's query points at; the prompt's own last
    # queries point elsewhere (position 5). Keeping 2 tokens per head (no sinks, no window): selection at
    # prefill keeps what the prompt looked at, selection at question time what the question looks at.
    torch.manual_seed(0)
    d, length = 16, 40
    keys = torch.randn(1, 1, length, d) * 0.1
    keys[0, 0, 23] = torch.ones(d)
    keys[0, 0, 5] = -torch.ones(d)
    values = torch.randn(1, 1, length, d)
    prompt_queries = -torch.ones(1, 1, length, d) * 3
    question_keys, question_values = torch.randn(1, 1, 3, d) * 0.1, torch.randn(1, 1, 3, d)
    question_queries = torch.ones(1, 1, 3, d) * 3
    config = HybridKVConfig(
        budget=2, head_types="static", sinks=0, recent_window=0, window=4, pooling_kernel=1, select_at="question"
    )
    kept = {}
    for park in (False, True):
        layer = _layer_cache(config, park=park).layers[0]
        layer.update(keys, values)
        layer.compress(prompt_queries, None, d**-0.5)
        assert layer.phase is (Phase.PARKED if park else Phase.COMPRESSED)
        layer.update(question_keys, question_values)
        if park:
            layer.select_for_question(question_queries, d**-0.5)
        layer.attend(question_queries, d**-0.5)
        kept[park] = _kept_keys(layer)
        assert kept[park].shape[0] == 2
    assert any(torch.equal(k, keys[0, 0, 5]) for k in kept[False])
    assert any(torch.equal(k, keys[0, 0, 23]) for k in kept[True])
    assert not any(torch.equal(k, keys[0, 0, 23]) for k in kept[False])


def test_crop_parks_the_whole_prompt_again():
    torch.manual_seed(1)
    d, length = 8, 30
    keys, values = torch.randn(1, 2, length, d), torch.randn(1, 2, length, d)
    config = HybridKVConfig(budget=0.2, window=4, sinks=1, chunk_size=4, select_at="question")
    cache = _layer_cache(config, park=True)
    layer = cache.layers[0]
    layer.update(keys, values)
    layer.compress(torch.randn(1, 4, length, d), None, d**-0.5)
    parked_cold = cache.cold_bytes()
    assert parked_cold >= 2 * keys.numel() * keys.element_size()  # the whole prompt, keys and values
    assert layer.hot is None and layer.keys is None
    outputs = []
    question_k, question_v, q = torch.randn(1, 2, 5, d), torch.randn(1, 2, 5, d), torch.randn(1, 4, 5, d)
    for _ in range(2):
        layer.update(question_k, question_v)
        layer.select_for_question(q, d**-0.5)
        assert layer.phase is Phase.COMPRESSED and layer.hot is not None
        outputs.append(layer.attend(q, d**-0.5))
        layer.crop(-5)
        assert layer.phase is Phase.PARKED and layer.hot is None and layer.chunks is None
        assert cache.get_seq_length() == length and cache.cold_bytes() == parked_cold
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)  # the same question, the same selection
    with pytest.raises(CacheStateError, match="question appended first"):
        layer.select_for_question(q, d**-0.5)  # nothing appended: no question to select with
    cache2 = _layer_cache(HybridKVConfig(select_at="question"), park=False)
    cache2.layers[0].update(keys, values)
    with pytest.raises(CacheStateError, match="before the prefill"):
        cache2.select_at_question()


QUESTION_TIME_METHODS = [name for name in METHODS if name not in ("full", "h2o")]  # h2o: a ConfigError (below)


@pytest.mark.parametrize(
    ("family", "method_name"),
    [(f, "hybridkv") for f in ("qwen2_5_vl", "qwen3", "llava_onevision")]
    + [("qwen2_5_vl", m) for m in QUESTION_TIME_METHODS if m != "hybridkv"],
)
def test_question_time_session_is_exact_at_full_budget(tiny, family, method_name):
    loaded = tiny(family)
    images = [synthetic_image(336, 336, seed=3)] if loaded.adapter.is_multimodal else []
    context = "Here is a list: 1. apple 2. river 3. stone 4. cloud 5. maple." * 2
    options = {"budget": 1.0, "chunk_size": 8, "window": 8, "sinks": 2, "select_at": "question"}
    if METHODS[method_name].needs_profile:
        options["profile"] = made_up_profile_of(loaded)
    method = get_method(method_name, **options)
    with (
        Session(loaded, get_method("full"), context=context, images=images) as ref_chat,
        Session(loaded, method, context=context, images=images) as chat,
    ):
        assert all(layer.phase is Phase.PARKED for layer in chat.cache.layers)
        for question in (" What is item 2?", " Which item comes last?", " What is item 2?"):
            ref = ref_chat.ask(question, max_new_tokens=5).result.new_tokens
            got = chat.ask(question, max_new_tokens=5)
            assert torch.equal(got.result.new_tokens, ref), question
            assert all(layer.phase is Phase.PARKED for layer in chat.cache.layers)
            assert chat.cache.get_seq_length() == chat.context_tokens


def test_question_time_session_compresses_per_question_and_reports_the_parked_context(tiny):
    loaded = tiny("qwen2_5_vl")
    images = [synthetic_image(672, 672, seed=2)]
    method = get_method("hybridkv", budget=0.1, select_at="question")
    with Session(loaded, method, images=images) as chat:
        first = chat.ask(" Describe the image.", max_new_tokens=4)
        other = chat.ask(" What colour is the top left corner of the image?", max_new_tokens=4)
        again = chat.ask(" Describe the image.", max_new_tokens=4)
        stats = chat.cache.stats()
        heads = stats.heads
        assert stats.time_s["question"] > 0  # the per-question read and selection, timed apart from decoding
        parked = sum(2 * layer.parked.keys.nbytes for layer in chat.cache.layers)
    assert first.text == again.text
    assert torch.equal(first.result.new_tokens, again.result.new_tokens)
    assert first.result.kv_hot_bytes < 0.25 * first.result.full_kv_bytes
    # the whole context stays cold once: dynamic heads read their chunks from it (token indices only)
    assert parked <= first.result.kv_cold_bytes <= 1.05 * parked
    assert other.question_tokens > 0 and heads


def test_select_at_is_validated():
    with pytest.raises(ConfigError, match="select_at"):
        HybridKVConfig(select_at="answer")
    with pytest.raises(ConfigError, match="h2o"):
        get_method("h2o", select_at="question")


def test_question_time_on_the_disk_tier_answers_as_on_the_host(tiny, tmp_path):
    loaded = tiny("qwen3")
    context = "Here is a list: 1. apple 2. river 3. stone 4. cloud 5. maple. " * 6
    answers = []
    for tier in ("host", "disk"):
        method = get_method("hybridkv", budget=0.3, select_at="question", cold_tier=tier, cold_dir=str(tmp_path))
        with Session(loaded, method, context=context) as chat:
            answers.append([chat.ask(q, max_new_tokens=5).result.new_tokens for q in (" Item 2?", " Item 4?")])
    assert all(torch.equal(a, b) for a, b in zip(*answers, strict=True))
