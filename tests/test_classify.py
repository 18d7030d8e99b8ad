"""Classification on constructed heads: one locked on a few text tokens (static), one spread over
visual tokens (dynamic). Every score and every rule must tell them apart."""

from __future__ import annotations

import pytest
import torch

from hybridkv.cache.prefill import analyse_window
from hybridkv.classify import RULES, SCORES, classify_static, head_scores
from hybridkv.token_types import TokenType

L, TEXT = 200, 40  # positions [0, 40) text, [40, 200) visual


def constructed_attention():
    """Queries/keys such that KV head 0 looks at one text key and KV head 1 spreads over visual keys."""
    d, w = 16, 8
    key = torch.zeros(1, 2, L, d)
    key[0, 0, 17, 0] = 1.0  # one text anchor for head 0
    key[0, 1, TEXT:, 1] = 1.0  # every visual key alike for head 1
    query = torch.zeros(1, 4, w, d)  # 2 query heads per KV head
    query[0, :2, :, 0] = 20.0
    query[0, 2:, :, 1] = 20.0
    types = torch.full((1, L), int(TokenType.TEXT))
    types[0, TEXT:] = int(TokenType.IMAGE)
    win = analyse_window(query, key, torch.ones(1, L, dtype=torch.bool), window=w, scaling=1.0)
    return win, types


@pytest.mark.parametrize("score", sorted(SCORES))
def test_every_score_ranks_the_anchored_head_above_the_spread_one(score):
    win, types = constructed_attention()
    s = head_scores(score, win.probs, win.key_valid, types, top_ratio=0.05)
    assert s.shape == (1, 2)
    assert float(s[0, 0]) > 0.9 > float(s[0, 1])


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("score", sorted(SCORES))
def test_every_rule_gives_the_expected_types(rule, score):
    win, types = constructed_attention()
    s = head_scores(score, win.probs, win.key_valid, types, top_ratio=0.05)
    static = classify_static(s, 0.9, rule=rule, dynamic_share=0.5)
    assert static.tolist() == [[True, False]]


def test_forced_policies_and_quantile_edges():
    s = torch.tensor([[0.1, 0.5, 0.9, 0.3]])
    assert classify_static(s, 0.9, "static").all()
    assert not classify_static(s, 0.9, "dynamic").any()
    assert classify_static(s, 0.0, rule="quantile", dynamic_share=0.0).all()
    assert not classify_static(s, 0.0, rule="quantile", dynamic_share=1.0).any()
    assert classify_static(s, 0.0, rule="quantile", dynamic_share=0.5).tolist() == [[False, True, True, False]]


def test_profile_and_blend_modes():
    scores = torch.tensor([[0.95, 0.2, 0.88, 0.93]])
    prior = torch.tensor([True, True, False, False])
    assert classify_static(scores, 0.9, mode="profile", prior=prior).tolist() == [[True, True, False, False]]
    # blend: the prior holds unless the score crosses theta by more than the margin
    got = classify_static(scores, 0.9, mode="blend", prior=prior, margin=0.05)
    assert got.tolist() == [[True, False, False, False]]
    got = classify_static(scores, 0.9, mode="blend", prior=prior, margin=0.02)
    assert got.tolist() == [[True, False, False, True]]


def test_text_topk_makes_a_head_concentrated_on_visual_tokens_dynamic():
    """A head locked on one visual token is concentrated (static by topk_mass) but reads the image, so the
    default score leaves it dynamic; on a text-only prompt the default equals topk_mass."""
    d, w = 16, 8
    key = torch.zeros(1, 2, L, d)
    key[0, 0, 17, 0] = 1.0  # head 0: one text anchor
    key[0, 1, 120, 1] = 1.0  # head 1: one visual anchor
    query = torch.zeros(1, 4, w, d)
    query[0, :2, :, 0] = 20.0
    query[0, 2:, :, 1] = 20.0
    types = torch.full((1, L), int(TokenType.TEXT))
    types[0, TEXT:] = int(TokenType.IMAGE)
    win = analyse_window(query, key, torch.ones(1, L, dtype=torch.bool), window=w, scaling=1.0)
    concentrated = head_scores("topk_mass", win.probs, win.key_valid, types, top_ratio=0.05)
    anchored = head_scores("text_topk", win.probs, win.key_valid, types, top_ratio=0.05)
    assert classify_static(concentrated, 0.9).tolist() == [[True, True]]
    assert classify_static(anchored, 0.9).tolist() == [[True, False]]
    text_only = torch.full((1, L), int(TokenType.TEXT))
    assert torch.equal(
        head_scores("text_topk", win.probs, win.key_valid, text_only, top_ratio=0.05),
        head_scores("topk_mass", win.probs, win.key_valid, text_only, top_ratio=0.05),
    )
