"""Budgets are pure functions: clamped, exact, and sane at tiny lengths."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridkv.budget import (
    adaptive_allocation,
    allocate_layer,
    dynamic_layout,
    prompt_tokens_budget,
    proportional_split,
    pyramid_scale,
    two_level_allocation,
    uniform_allocation,
)
from hybridkv.config import HybridKVConfig
from hybridkv.errors import BudgetError, ConfigError

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)
budgets = st.one_of(st.floats(min_value=1e-4, max_value=1.0), st.integers(min_value=1, max_value=5000))


@SETTINGS
@given(budget=budgets, length=st.integers(0, 5000), floor=st.integers(0, 64))
def test_prompt_budget_is_clamped(budget, length, floor):
    n = prompt_tokens_budget(budget, length, floor=floor)
    assert 0 <= n <= length
    assert n >= min(floor, length)
    if length and isinstance(budget, float):
        assert n >= min(length, budget * length - 1e-6)


def test_ratio_one_keeps_everything_and_rounding_is_up():
    assert prompt_tokens_budget(1.0, 1234, floor=20) == 1234
    assert prompt_tokens_budget(0.1, 1040, floor=0) == 104  # no float noise (0.1 * 1040 = 104.00000000000001)
    assert prompt_tokens_budget(0.1, 5, floor=0) == 1
    assert prompt_tokens_budget(3, 2, floor=0) == 2


@SETTINGS
@given(
    length=st.integers(1, 3000),
    budget=st.integers(1, 3000),
    sinks=st.integers(0, 8),
    window=st.integers(1, 32),
    chunk=st.integers(1, 64),
)
def test_dynamic_layout_invariants(length, budget, sinks, window, chunk):
    budget = prompt_tokens_budget(budget, length, floor=sinks + window)
    lay = dynamic_layout(length, budget, sinks=sinks, window=window, chunk_size=chunk)
    assert lay.sinks + lay.middle + lay.window == length  # every token is somewhere
    assert lay.n_chunks * chunk >= lay.middle > (lay.n_chunks - 1) * chunk or lay.middle == 0
    assert lay.window == min(window, length - lay.sinks)
    assert 0 <= lay.n_select <= lay.n_chunks
    assert lay.attended_tokens <= budget  # never above budget
    if budget >= length:
        assert lay.n_select == lay.n_chunks  # full budget retrieves every chunk


def test_uniform_allocation_per_row():
    static = torch.tensor([[True, False, True], [False, False, True]])
    out = allocate_layer("uniform", 0.5, static, torch.rand(2, 3), [10, 100], floor=4, sinks=1, window=3,
                         chunk_size=4, r=1.0)
    assert out.tolist() == [[5, 5, 5], [50, 50, 50]]


@SETTINGS
@given(
    data=st.data(),
    n=st.integers(1, 8),
    length=st.integers(1, 2000),
    per_head=st.integers(1, 2000),
    sinks=st.integers(0, 4),
    window=st.integers(1, 16),
    chunk=st.sampled_from([1, 4, 16, 32]),
    r=st.floats(0.1, 4.0),
)
def test_two_level_allocation_invariants(data, n, length, per_head, sinks, window, chunk, r):
    static = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    scores = data.draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
    floor = sinks + window
    per_head = prompt_tokens_budget(per_head, length, floor=floor)
    total = n * per_head
    kw = dict(floor=floor, sinks=sinks, window=window, chunk_size=chunk, r=r)
    out = two_level_allocation(total, static, scores, length, **kw)
    assert sum(out) == total  # exact
    assert all(min(floor, length) <= b <= length for b in out)  # floors and caps
    assert out == two_level_allocation(total, static, scores, length, **kw)  # deterministic
    for b, s in zip(out, static, strict=True):
        if not s:  # a dynamic head never attends beyond its budget after chunk rounding
            lay = dynamic_layout(length, b, sinks=sinks, window=window, chunk_size=chunk)
            assert lay.attended_tokens <= b
    if any(static) and not all(static):
        dyn = [b for b, s in zip(out, static, strict=True) if not s]
        assert max(dyn) - min(dyn) <= 1  # dynamic heads share evenly (up to integer rounding)


def test_static_heads_share_in_proportion_to_score():
    out = two_level_allocation(300, [True, True, False], [0.9, 0.3, 0.5], 1000, floor=0, sinks=0, window=1,
                               chunk_size=1, r=1.0)
    assert out[2] == 100 and out[0] > out[1] and abs(out[0] / out[1] - 3.0) < 0.05


@SETTINGS
@given(
    total=st.integers(0, 10_000),
    weights=st.lists(st.floats(0, 5), min_size=1, max_size=10),
    cap=st.integers(0, 3000),
)
def test_proportional_split_exact_and_capped(total, weights, cap):
    caps = [cap] * len(weights)
    out = proportional_split(total, weights, caps)
    assert sum(out) == min(total, sum(caps)) and all(0 <= o <= cap for o in out)
    assert uniform_allocation(total, [True] * len(weights), weights, cap) == proportional_split(
        min(total, len(weights) * cap), [1.0] * len(weights), caps
    )


@pytest.mark.parametrize("bad", [0, -1, 0.0, -0.5, 1.5, 2.0, "0.1", None, True, float("nan")])
def test_bad_budgets_raise_one_clear_error(bad):
    with pytest.raises(BudgetError) as err:
        HybridKVConfig(budget=bad)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"theta": 1.5}, {"chunk_size": 0}, {"window": 0}, {"pooling_kernel": 4}, {"score": "nope"},
     {"head_types": "both"}, {"cold_tier": "gpu"}, {"sinks": -1}],
)
def test_bad_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        HybridKVConfig(**kwargs)


@SETTINGS
@given(num_layers=st.integers(1, 80), beta=st.floats(1.5, 50.0))
def test_pyramid_schedule_averages_to_one_and_falls_with_depth(num_layers, beta):
    scales = [pyramid_scale(i, num_layers, beta) for i in range(num_layers)]
    assert abs(sum(scales) / num_layers - 1.0) < 1e-9
    assert all(a >= b for a, b in zip(scales, scales[1:], strict=False))
    assert min(scales) > 0


def test_pyramid_layers_and_full_budget():
    static = torch.zeros(1, 2, dtype=torch.bool)
    kw = dict(floor=4, sinks=1, window=3, chunk_size=4, r=1.0)
    first = allocate_layer("pyramid", 0.1, static, torch.rand(1, 2), [1000], layer_scale=pyramid_scale(0, 8), **kw)
    last = allocate_layer("pyramid", 0.1, static, torch.rand(1, 2), [1000], layer_scale=pyramid_scale(7, 8), **kw)
    assert first[0, 0] > 100 > last[0, 0] >= 4
    full = allocate_layer("pyramid", 1.0, static, torch.rand(1, 2), [1000], layer_scale=pyramid_scale(7, 8), **kw)
    assert full.tolist() == [[1000, 1000]]  # budget 1.0 is never scaled down


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), length=st.integers(1, 400), per_head=st.integers(1, 400))
def test_adaptive_allocation_exact_and_floored(seed, n, length, per_head):
    g = torch.Generator().manual_seed(seed)
    importance = torch.rand(n, length, generator=g) ** 4
    per_head = prompt_tokens_budget(per_head, length, floor=8)
    out = adaptive_allocation(n * per_head, [True] * n, [0.5] * n, length, floor=8, importance=importance)
    assert sum(out) == n * per_head
    assert all(min(8, length) <= b <= length for b in out)


def test_adaptive_gives_the_spread_head_more():
    length = 1000
    concentrated = torch.zeros(length)
    concentrated[:5] = 1.0
    spread = torch.full((length,), 0.01)
    out = adaptive_allocation(2 * 100, [True, True], [0.9, 0.1], length, floor=20,
                              importance=torch.stack([concentrated, spread]))
    assert sum(out) == 200 and out[1] > out[0] >= 20


def test_type_level_allocation_keeps_pools_but_evens_heads():
    kw = dict(floor=0, sinks=0, window=1, chunk_size=1, r=1.0)
    two = two_level_allocation(300, [True, True, False], [0.9, 0.3, 0.5], 1000, **kw)
    flat = allocate_layer("type-level", 100, torch.tensor([[True, True, False]]), torch.tensor([[0.9, 0.3, 0.5]]),
                          [1000], floor=0, sinks=0, window=1, chunk_size=1, r=1.0)[0].tolist()
    assert sum(flat) == sum(two) == 300
    assert flat[2] == two[2]  # the same type-level pools
    assert flat[0] == flat[1] and two[0] > two[1]  # but no head-level split
