"""H2O's decode-time eviction: heads stay at their budget while generating, lowest accumulated score first."""

from __future__ import annotations

import pytest
import torch

from hybridkv.cache.decode_eviction import DecodeEviction
from hybridkv.cache.hot_store import HotStore
from hybridkv.config import HybridKVConfig
from hybridkv.errors import ConfigError
from hybridkv.kernels import segment_attention
from hybridkv.methods import get_method
from hybridkv.models.testing import synthetic_image


def _store(seg: list[int]) -> HotStore:
    n = len(seg)
    keys = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 4)  # key i is all i: traceable
    return HotStore(keys, keys.clone(), torch.tensor(seg, dtype=torch.int16))


def test_evicts_the_lowest_scored_non_sinks_of_each_head_down_to_budget_minus_generated():
    hot = _store([0, 0, 0, 0, 0, 1, 1, 1])
    ev = DecodeEviction(
        scores=torch.tensor([0.0, 5.0, 1.0, 3.0, 2.0, 0.0, 9.0, 8.0]),
        sinks=torch.tensor([True, False, False, False, False, True, False, False]),
        budgets=torch.tensor([5, 3]),
        compressed=torch.tensor([True, True]),
    )
    out = ev.evict(hot, generated=2)  # head 0: 5 - 2 = 3 kept; head 1: 3 - 2 = 1, but its sink stays
    kept = out.keys[:, 0].long().tolist()
    assert kept == [0, 1, 3, 5]  # head 0: sink 0, then scores 5 and 3; head 1: only its sink
    assert ev.scores.tolist() == [0.0, 5.0, 3.0, 0.0] and ev.sinks.tolist() == [True, False, False, True]
    assert out.seg.tolist() == [0, 0, 0, 1]


def test_uncompressed_heads_and_heads_within_budget_keep_everything():
    hot = _store([0, 0, 1, 1])
    ev = DecodeEviction(
        torch.zeros(4), torch.zeros(4, dtype=torch.bool), torch.tensor([2, 2]), torch.tensor([False, True])
    )
    assert ev.evict(hot, generated=0) is hot
    out = ev.evict(hot, generated=1)
    assert out.seg.tolist() == [0, 0, 1]  # the uncompressed head 0 (budget = its prompt) never evicts


def test_accumulate_adds_each_tokens_softmax_share():
    hot = _store([0, 0, 1])
    ev = DecodeEviction(
        torch.zeros(3), torch.zeros(3, dtype=torch.bool), torch.tensor([2, 1]), torch.tensor([True, True])
    )
    q = torch.ones(2, 4)
    col_seg = torch.tensor([0, 1])
    logits = torch.tensor([[0.0, 4.0], [4.0, 0.0]]).T  # what hot.keys @ q.T gives per segment
    lse = torch.tensor([torch.logsumexp(torch.tensor([0.0, 4.0]), 0), torch.tensor(8.0)])
    _, hot_lse, masked = segment_attention(q, col_seg, hot.keys, hot.values, hot.seg, 1.0, return_logits=True)
    assert torch.allclose(hot_lse, lse)  # no tail here: the hot store's lse is every part's
    ev.accumulate(masked, lse)
    expected = torch.tensor([torch.exp(logits[0, 0] - lse[0]), torch.exp(logits[0, 1] - lse[0]), torch.exp(8 - lse[1])])
    assert torch.allclose(ev.scores, expected)


def test_h2o_heads_stay_at_their_budget_while_decoding(tiny):
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(336, 336, seed=4)])
    method = get_method("h2o", budget=0.3, window=4, sinks=2)
    new = 8
    with method(loaded.model), torch.inference_mode():
        cache = method.make_cache(loaded.model, inputs)
        loaded.model.generate(**inputs, past_key_values=cache, max_new_tokens=new, min_new_tokens=new, do_sample=False)
    for layer, heads in zip(cache.layers, cache.stats().heads, strict=True):
        kept = layer.hot.resident_counts(len(heads.budget[0])).tolist()
        tail = layer.tail_len  # every generated token but the last (which never went through the cache)
        assert kept == [max(b - tail, 2) for b in heads.budget[0]]


def test_only_static_accumulated_heads_may_evict_while_decoding():
    with pytest.raises(ConfigError, match="h2o"):
        HybridKVConfig(evict_during_decode=True)  # online head types, window scores
    assert get_method("h2o").config.evict_during_decode
    assert not get_method("snapkv").config.evict_during_decode


def test_h2o_in_a_session_stays_within_budget_across_questions_and_is_exact_at_full_budget(tiny):
    from hybridkv import Session

    loaded = tiny("qwen2_5_vl")
    images = [synthetic_image(336, 336, seed=4)]
    questions = (" Describe the image.", " What colour dominates?")
    with Session(loaded, get_method("h2o", budget=0.2, window=4, sinks=2), images=images) as chat:
        for question in questions:
            chat.ask(question, max_new_tokens=4)
            assert chat.cache.get_seq_length() == chat.context_tokens  # the question and answer were removed
            for layer, heads in zip(chat.cache.layers, chat.cache.stats().heads, strict=True):
                kept = layer.hot.resident_counts(len(heads.budget[0])).tolist()
                # the question is input (kept beside the budget); the 3 answer tokens that went through the
                # cache each cost a compressed head one prompt token
                n = layer.row_lengths[0]
                assert kept == [max(b - 3, 2) if b < n else b for b in heads.budget[0]]
    with (
        Session(loaded, get_method("full"), images=images) as ref,
        Session(loaded, get_method("h2o", budget=1.0, window=4, sinks=2), images=images) as chat,
    ):
        for question in questions:
            expected = ref.ask(question, max_new_tokens=4).result.new_tokens
            assert torch.equal(chat.ask(question, max_new_tokens=4).result.new_tokens, expected)
