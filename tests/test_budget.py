"""Budgets are pure functions: clamped, exact, and sane at tiny lengths."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridkv.budget import dynamic_layout, prompt_tokens_budget, uniform_head_budgets
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
    assert lay.sinks + lay.n_chunks * chunk + lay.window == length  # every token is somewhere, chunks are full
    assert lay.window >= min(window, length - lay.sinks)
    assert 0 <= lay.n_select <= lay.n_chunks
    assert lay.attended_tokens <= max(budget, lay.resident_tokens)  # never above budget beyond the floor
    if budget >= length:
        assert lay.n_select == lay.n_chunks  # full budget retrieves every chunk


def test_uniform_head_budgets_shape_and_rows():
    out = uniform_head_budgets(0.5, torch.tensor([10, 100]), 3, floor=4)
    assert out.tolist() == [[5, 5, 5], [50, 50, 50]]


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
