"""Budgets are pure functions: clamped, exact, and sane at tiny lengths."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hybridkv.budget import (
    MIN_CHUNK_TOKENS,
    MIN_SELECTED_CHUNKS,
    SINK_SHARE,
    adaptive_allocation,
    allocate_layer,
    dynamic_layout,
    fastv_layer_budgets,
    fit_short_layout,
    input_adaptive_factor,
    modality_allocation,
    modality_quotas,
    profile_head_budgets,
    profile_layer_scales,
    prompt_tokens_budget,
    proportional_split,
    pyramid_layer_budgets,
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
    core_share=st.sampled_from([0.0, 0.25, 0.5, 0.9]),
    chunkless_core=st.booleans(),
)
@example(length=100, budget=30, sinks=4, window=8, chunk=8, core_share=0.5, chunkless_core=False)
def test_dynamic_layout_invariants(length, budget, sinks, window, chunk, core_share, chunkless_core):
    budget = prompt_tokens_budget(budget, length, floor=sinks + window)
    lay = dynamic_layout(
        length,
        budget,
        sinks=sinks,
        window=window,
        chunk_size=chunk,
        core_share=core_share,
        chunkless_core=chunkless_core,
    )
    spare = max(budget - sinks - window, 0)
    assert lay.sinks + lay.middle + lay.window == length  # every token is somewhere
    shared = int(core_share * spare)
    chunkless = chunkless_core and 0 < spare - shared < chunk and spare < lay.middle
    assert lay.core + lay.body == lay.middle and lay.core == (
        spare if chunkless else min(shared, lay.middle) * (spare < lay.middle)
    )
    assert lay.n_chunks * chunk >= lay.body > (lay.n_chunks - 1) * chunk or lay.body == 0
    assert lay.window == min(window, length - lay.sinks)
    assert 0 <= lay.n_select <= lay.n_chunks
    assert lay.attended_tokens <= budget  # never above budget
    if budget >= length:
        assert lay.n_select == lay.n_chunks  # full budget retrieves every chunk
    if chunkless:
        assert lay.n_select == 0 and lay.attended_tokens == budget  # no chunk: the whole share is resident core


def test_a_share_too_small_for_one_chunk_becomes_core():
    # 5% of a 70-token prompt after the short-prompt fit: 1 sink, 1 window, 2 spare: less than one chunk of 4
    lay = dynamic_layout(70, 4, sinks=1, window=1, chunk_size=4)
    assert (lay.core, lay.n_select, lay.attended_tokens) == (0, 0, 2)  # sinks and window only
    lay = dynamic_layout(70, 4, sinks=1, window=1, chunk_size=4, chunkless_core=True)
    assert (lay.core, lay.n_select, lay.attended_tokens) == (2, 0, 4)  # its best tokens, as a static head
    # a share that buys a chunk is untouched: its remainder stays unattended, chunks stay aligned
    lay = dynamic_layout(70, 7, sinks=1, window=1, chunk_size=4, chunkless_core=True)
    assert (lay.core, lay.n_select, lay.attended_tokens) == (0, 1, 6)
    assert dynamic_layout(70, 70, sinks=1, window=1, chunk_size=4, chunkless_core=True).core == 0  # full: no core


def test_uniform_allocation_per_row():
    static = torch.tensor([[True, False, True], [False, False, True]])
    out = allocate_layer(
        "uniform", 0.5, static, torch.rand(2, 3), [10, 100], floor=4, sinks=1, window=3, chunk_size=4, r=1.0
    )
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
    out = two_level_allocation(
        300, [True, True, False], [0.9, 0.3, 0.5], 1000, floor=0, sinks=0, window=1, chunk_size=1, r=1.0
    )
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
    [
        {"theta": 1.5},
        {"chunk_size": 0},
        {"window": 0},
        {"pooling_kernel": 4},
        {"score": "nope"},
        {"head_types": "both"},
        {"cold_tier": "gpu"},
        {"sinks": -1},
        {"token_scores": "all"},
        {"merge": "max"},
        {"fastv_layer": 0},
        {"fastv_layer": 1.5},
        {"selector": "fastv"},
        {"uniform_share": 1.5},
        {"allocator": "profile"},
        {"chunk_scoring": "mean"},
    ],
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


@SETTINGS
@given(
    length=st.integers(1, 5000),
    ratio=st.floats(0.01, 1.0),
    layers=st.integers(1, 40),
    floor=st.integers(1, 64),
    beta=st.floats(1.5, 50.0),
)
def test_pyramid_layer_budgets_exact_clamped_and_falling(length, ratio, layers, floor, beta):
    per_head = prompt_tokens_budget(ratio, length, floor=floor)
    out = pyramid_layer_budgets(per_head, length, layers, floor=floor, beta=beta)
    assert len(out) == layers
    assert all(min(floor, length) <= x <= length for x in out)
    assert sum(out) == layers * per_head  # per_head is already within [floor, length]: always feasible
    assert all(a >= b for a, b in zip(out, out[1:], strict=False))
    if per_head == length:
        assert out == [length] * layers


def test_pyramid_layer_budgets_lift_shallow_top_layers_at_the_expense_of_lower_ones():
    # 4 layers, 10% of 2,000 tokens: the pyramid's last layer (1/20 of 200 = 10) is below the 20-token floor
    out = pyramid_layer_budgets(200, 2000, 4, floor=20)
    assert out[-1] == 20 and sum(out) == 800 and out[0] > 2 * out[2]


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
    out = adaptive_allocation(
        2 * 100, [True, True], [0.9, 0.1], length, floor=20, importance=torch.stack([concentrated, spread])
    )
    assert sum(out) == 200 and out[1] > out[0] >= 20


def test_type_level_allocation_keeps_pools_but_evens_heads():
    kw = dict(floor=0, sinks=0, window=1, chunk_size=1, r=1.0)
    two = two_level_allocation(300, [True, True, False], [0.9, 0.3, 0.5], 1000, **kw)
    flat = allocate_layer(
        "type-level",
        100,
        torch.tensor([[True, True, False]]),
        torch.tensor([[0.9, 0.3, 0.5]]),
        [1000],
        floor=0,
        sinks=0,
        window=1,
        chunk_size=1,
        r=1.0,
    )[0].tolist()
    assert sum(flat) == sum(two) == 300
    assert flat[2] == two[2]  # the same type-level pools
    assert flat[0] == flat[1] and two[0] > two[1]  # but no head-level split


@SETTINGS
@given(
    length=st.integers(0, 300),
    budget=st.integers(1, 300),
    layers=st.integers(1, 12),
    k=st.integers(1, 14),
    floor=st.integers(0, 24),
)
def test_fastv_layer_budgets_full_early_equal_budget_when_possible(length, budget, layers, k, floor):
    per_head = prompt_tokens_budget(budget, length, floor=floor)
    out = fastv_layer_budgets(per_head, length, layers, k, floor=floor)
    assert len(out) == layers
    assert out[: min(k, layers)] == [length] * min(k, layers)  # layers < K: the whole prompt
    assert all(min(floor, length) <= b <= length for b in out)
    later = out[min(k, layers) :]
    assert not later or max(later) - min(later) <= 1 or min(later) == min(floor, length)
    if layers > k and layers * per_head - k * length >= (layers - k) * min(floor, length):
        assert sum(out) == layers * per_head  # equal budget whenever the floor does not bind
    if per_head == length:
        assert out == [length] * layers  # budget 1.0: no compression anywhere


def test_fastv_layer_budgets_small_cases():
    assert fastv_layer_budgets(50, 100, 4, 2, floor=4) == [100, 100, 4, 4]  # 2 full layers use it all: the floor
    assert fastv_layer_budgets(60, 100, 4, 2, floor=4) == [100, 100, 20, 20]
    assert fastv_layer_budgets(61, 100, 4, 1, floor=4) == [100, 48, 48, 48]
    assert fastv_layer_budgets(5, 3, 2, 1, floor=8) == [3, 3]  # clamped to the prompt
    assert fastv_layer_budgets(5, 0, 3, 1, floor=8) == [0, 0, 0]


@SETTINGS
@given(
    data=st.data(),
    layers=st.integers(1, 5),
    heads=st.integers(1, 4),
    length=st.integers(0, 200),
    budget=st.integers(1, 200),
    floor=st.integers(0, 20),
    share=st.floats(0.0, 1.0),
)
def test_profile_head_budgets_exact_floored_capped(data, layers, heads, length, budget, floor, share):
    weight = st.one_of(st.floats(0.0, 1.0), st.just(float("nan")))
    weights = [[data.draw(weight) for _ in range(heads)] for _ in range(layers)]
    per_head = prompt_tokens_budget(budget, length, floor=floor)
    out = profile_head_budgets(per_head, length, weights, floor=floor, uniform_share=share)
    flat = [b for row in out for b in row]
    assert len(out) == layers and all(len(row) == heads for row in out)
    assert sum(flat) == layers * heads * per_head  # the model's budget, exactly
    assert all(min(floor, length) <= b <= length for b in flat)
    assert min(flat) >= min(length, int(share * per_head))


def test_profile_head_budgets_follow_the_weights():
    out = profile_head_budgets(100, 1000, [[0.0, 0.1], [0.3, 0.0]], floor=10, uniform_share=0.2)
    assert sum(map(sum, out)) == 400
    assert out[0][0] == out[1][1] == 20  # the uniform floor only
    assert out[1][0] == 20 + 240 and out[0][1] == 20 + 80  # the rest 3:1
    assert profile_head_budgets(7, 7, [[0.0, 5.0]], floor=2) == [[7, 7]]  # budget 1.0: everything


@SETTINGS
@given(spare=st.integers(0, 100), share=st.floats(0.0, 1.0), n_text=st.integers(0, 60), n_visual=st.integers(0, 60))
def test_modality_quotas_capped_and_within_spare(spare, share, n_text, n_visual):
    text, visual = modality_quotas(spare, share, n_text, n_visual)
    assert 0 <= text <= n_text and 0 <= visual <= n_visual and text + visual <= spare
    if text < n_text and visual < n_visual:
        assert text + visual == spare  # nothing unused unless a modality ran out
    assert modality_quotas(10, 0.7, 100, 100) == (3, 7)


@SETTINGS
@given(
    data=st.data(),
    heads=st.integers(1, 4),
    n_text=st.integers(0, 40),
    n_visual=st.integers(0, 40),
    protected=st.integers(0, 10),
    budget=st.integers(1, 120),
    carry=st.integers(0, 60),
    future=st.integers(0, 200),
)
def test_modality_allocation_spends_or_carries_every_token(
    data, heads, n_text, n_visual, protected, budget, carry, future
):
    length = protected + n_text + n_visual
    base = [prompt_tokens_budget(budget, length, floor=protected)] * heads if length else [0] * heads
    shares = [data.draw(st.floats(0.0, 1.0)) for _ in range(heads)]
    room = sum(length - b for b in base)
    carry = min(carry, room + future)  # what earlier layers may hand on (bounded by their future capacity)
    text, visual, out = modality_allocation(
        base,
        carry,
        shares,
        n_text=n_text,
        n_visual=n_visual,
        protected=protected,
        prompt_len=length,
        future_capacity=future,
    )
    assert all(0 <= t <= n_text for t in text) and all(0 <= v <= n_visual for v in visual)
    assert 0 <= out <= future
    spent = sum(min(length, protected) + t + v for t, v in zip(text, visual, strict=True))
    assert spent + out == sum(base) + carry  # no budget lost or made up
    if future == 0 and carry == 0:
        assert out == 0 and spent == sum(base)


def test_modality_allocation_carries_what_a_head_cannot_use():
    # head 0 prefers visual tokens but there are only 5 of them: the rest of its share moves on
    text, visual, out = modality_allocation(
        [30, 30], 0, [0.9, 0.1], n_text=40, n_visual=5, protected=10, prompt_len=55, future_capacity=100
    )
    assert visual == [5, 2] and text == [2, 18] and out == 13
    # with nowhere to carry (the last layer), the same head spends it on text instead
    text, visual, out = modality_allocation(
        [30, 30], 0, [0.9, 0.1], n_text=40, n_visual=5, protected=10, prompt_len=55, future_capacity=0
    )
    assert visual == [5, 2] and text == [15, 18] and out == 0
    # the next layer takes a carry on top of its own budget, spread evenly over its heads
    text, visual, out = modality_allocation(
        [30, 30], 13, [0.5, 0.5], n_text=40, n_visual=40, protected=10, prompt_len=90, future_capacity=0
    )
    assert sum(text) + sum(visual) == 2 * 20 + 13 and out == 0
    # a budget covering the prompt keeps everything, whatever the preference
    text, visual, out = modality_allocation(
        [55, 55], 0, [1.0, 0.0], n_text=40, n_visual=5, protected=10, prompt_len=55, future_capacity=0
    )
    assert text == [40, 40] and visual == [5, 5] and out == 0


# --- model -> layer level (layer_level) ----------------------------------------------------------


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=48))
def test_profile_layer_scales_keep_the_budget_on_average_and_favour_spread_layers(concentration):
    scales = profile_layer_scales(concentration)
    assert len(scales) == len(concentration)
    assert abs(sum(scales) / len(scales) - 1.0) < 1e-9
    assert all(s > 0 for s in scales)
    by_concentration = sorted(zip(concentration, scales, strict=True))
    shares = [share for _, share in by_concentration]
    assert all(a >= b - 1e-12 for a, b in zip(shares, shares[1:], strict=False))  # more spread, larger share


def test_profile_layer_scales_at_tiny_and_degenerate_inputs():
    assert profile_layer_scales([]) == []
    assert profile_layer_scales([0.3]) == [1.0]
    assert profile_layer_scales([1.0, 1.0]) == [1.0, 1.0]  # all fully concentrated: nothing to prefer
    lifted = profile_layer_scales([1.0, 0.0])  # the concentrated layer is lifted to the floor, not starved
    assert lifted[0] > 0 and lifted[1] > lifted[0]


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_input_adaptive_factor_only_ever_shrinks_and_is_bounded(concentration, reference):
    factor = input_adaptive_factor(concentration, reference)
    assert 0.5 <= factor <= 1.0
    if concentration <= reference:
        assert factor == 1.0  # an input at least as spread as calibration keeps the layer's whole share


@SETTINGS
@given(
    head_budget=st.integers(0, 5000),
    sinks=st.integers(0, 8),
    window=st.integers(0, 64),
    chunk_size=st.integers(1, 64),
    window_yields=st.booleans(),
)
def test_fitted_layout_stays_within_the_configured_sizes(head_budget, sinks, window, chunk_size, window_yields):
    fit = fit_short_layout(head_budget, sinks=sinks, window=window, chunk_size=chunk_size, window_yields=window_yields)
    s, w, c = fit
    assert w <= window and w <= max(1, head_budget // 4)
    if w < min(window, max(1, head_budget // 4)):  # the window only yields, and only as far as one chunk needs
        assert window_yields and head_budget - s - w == c
    assert s <= sinks and (s >= 1 or sinks == 0) and s <= max(1, int(head_budget * SINK_SHARE))
    assert 1 <= c <= chunk_size
    assert c >= min(chunk_size, MIN_CHUNK_TOKENS)
    room = head_budget - s - w
    if c < chunk_size and c > MIN_CHUNK_TOKENS:  # shrunk to a power of two, only as far as the count needs
        assert c & (c - 1) == 0
        assert room // c >= MIN_SELECTED_CHUNKS and room // (2 * c) < MIN_SELECTED_CHUNKS


def test_budgets_that_afford_the_configured_sizes_keep_them():
    # 10% of 2,000 tokens: 200 per head, enough for the window of 16 and 4 chunks of 16
    assert fit_short_layout(200, sinks=4, window=16, chunk_size=16) == (4, 16, 16)
    assert fit_short_layout(84, sinks=4, window=16, chunk_size=16) == (4, 16, 16)


def test_a_short_prompt_gets_room_to_retrieve():
    # 10% of a 262-token grid item: 27 tokens per head; the paper sizes would leave 7 and no chunk
    assert fit_short_layout(27, sinks=4, window=16, chunk_size=16) == (4, 6, 4)
    # 10% of a 70-token attribute item: 7 tokens; four sinks would leave 2, less than one chunk
    assert fit_short_layout(7, sinks=4, window=16, chunk_size=16) == (1, 1, MIN_CHUNK_TOKENS)
    # 2%: 6 tokens; one token of window and one sink, chunks floored at MIN_CHUNK_TOKENS
    assert fit_short_layout(6, sinks=4, window=16, chunk_size=16) == (1, 1, MIN_CHUNK_TOKENS)
    assert fit_short_layout(0, sinks=4, window=16, chunk_size=16) == (1, 1, MIN_CHUNK_TOKENS)
    assert fit_short_layout(0, sinks=0, window=16, chunk_size=16) == (0, 1, MIN_CHUNK_TOKENS)  # none asked, none kept
    # 2% of a 4,047-token many-image prompt: 81 tokens, 61 after sinks and window: 8-token chunks, not 15
    assert fit_short_layout(81, sinks=4, window=16, chunk_size=16) == (4, 16, 8)
    assert fit_short_layout(27, sinks=4, window=0, chunk_size=16) == (4, 0, 4)  # a window of 0 asked, 0 kept
    with pytest.raises(BudgetError, match="window must be >= 0"):
        fit_short_layout(27, sinks=4, window=-1, chunk_size=16)


def test_window_yields_only_where_that_buys_one_chunk():
    # 10% of a 46-token attribute context: 5 tokens; one sink and one window token leave 3, no chunk
    assert fit_short_layout(5, sinks=4, window=16, chunk_size=16, window_yields=False) == (1, 1, MIN_CHUNK_TOKENS)
    assert fit_short_layout(5, sinks=4, window=16, chunk_size=16) == (1, 0, MIN_CHUNK_TOKENS)
    # a chunk already fits, or dropping the whole window would still not buy one: unchanged
    for budget in (6, 7, 27, 81, 200, 4, 2, 0):
        assert fit_short_layout(budget, sinks=4, window=16, chunk_size=16) == fit_short_layout(
            budget, sinks=4, window=16, chunk_size=16, window_yields=False
        )


def test_cache_fits_a_configured_zero_window_without_a_spare_token():
    from hybridkv.cache.hybrid_cache import HybridCache

    # 10% of a 46-token attribute context: a 5-token share; no window leaves room for one sink and a chunk
    for recent_window, yields in ((0, False), (0, True), (None, True)):
        cfg = HybridKVConfig(budget=0.1, recent_window=recent_window, short_window_yields=yields)
        fitted = HybridCache(2, cfg).ctx.fit_to_prompt(46)
        assert (fitted.sinks, fitted.kept_window, fitted.chunk_size) == (1, 0, MIN_CHUNK_TOKENS)
    fitted = HybridCache(2, HybridKVConfig(budget=0.1, short_window_yields=False)).ctx.fit_to_prompt(46)
    assert (fitted.sinks, fitted.kept_window, fitted.chunk_size) == (1, 1, MIN_CHUNK_TOKENS)
    # a 36-token share: 4 sinks and no window leave 32, four chunks of 8 (a phantom window token left 4 of 4)
    fitted = HybridCache(2, HybridKVConfig(budget=0.1, recent_window=0)).ctx.fit_to_prompt(360)
    assert (fitted.sinks, fitted.kept_window, fitted.chunk_size) == (4, 0, 8)
