"""Retrieval is query-aware and bounded: the chunk score is a true upper bound, and retrieving every
chunk reproduces dense attention exactly."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridkv.cache.chunk_store import ChunkStore, ColdSource, runs_of, slot_counts
from hybridkv.cache.hot_store import HotStore
from hybridkv.cache.summaries import chunk_bounds, upper_bound_scores
from hybridkv.cache.tiers import HostTier
from hybridkv.kernels import merge_partials, segment_attention, tail_attention

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def make_store(bodies_k, bodies_v, n_select, chunk, extra, chunk_sizes=None, source=None):
    """A chunk store whose slots live in a hot store with no resident tokens (so only chunks are attended)."""
    heads = len(bodies_k)
    if chunk_sizes is None:
        chunk_sizes = [runs_of(t.shape[0], chunk) for t in bodies_k]
    n_slots = slot_counts([len(sizes) for sizes in chunk_sizes], n_select, extra)
    empty = torch.zeros(0, bodies_k[0].shape[-1])
    hot = HotStore(
        empty,
        empty,
        torch.zeros(0, dtype=torch.int16),
        torch.arange(heads).repeat_interleave(torch.tensor(n_slots)),
        chunk,
    )
    store = ChunkStore(
        bodies_k,
        bodies_v,
        list(range(heads)),
        n_select,
        chunk_size=chunk,
        n_slots=n_slots,
        slots=hot.slot_views(chunk),
        tier=HostTier(),
        device=torch.device("cpu"),
        scoring="max",
        chunk_sizes=chunk_sizes,
        source=source,
    )
    return store, hot


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=4),
    chunk=st.integers(1, 8),
    n_select=st.integers(1, 4),
    staged=st.booleans(),
)
def test_chunks_read_from_a_cold_copy_equal_stored_chunks(seed, lengths, chunk, n_select, staged):
    """A parked prompt's chunk store reads bodies by token index from the copy it already holds: the same
    chunks land in the same slots as when the store keeps its own bodies, and nothing is stored twice.
    ``staged`` routes the copies through the host staging buffers an accelerator uses (unpinned here)."""
    g = torch.Generator().manual_seed(seed)
    dim, total = 8, 64
    flat_k, flat_v = torch.randn(total, dim, generator=g), torch.randn(total, dim, generator=g)
    rows = [torch.randperm(total, generator=g)[:n].sort().values for n in lengths]  # each head's body rows
    bodies_k, bodies_v = [flat_k[r] for r in rows], [flat_v[r] for r in rows]
    picks = [min(n_select, len(runs_of(n, chunk))) for n in lengths]
    stored, hot_a = make_store(bodies_k, bodies_v, picks, chunk, 1)
    sourced, hot_b = make_store(bodies_k, bodies_v, picks, chunk, 1, source=ColdSource(flat_k, flat_v, rows))
    if staged:
        for store in (stored, sourced):
            size = store.slot_k.numel()
            store._stage = (torch.empty(size, dtype=flat_k.dtype), torch.empty(size, dtype=flat_v.dtype))
    query = torch.randn(len(lengths), 2, dim, generator=g)
    for step in (1, 2):
        chosen, valid = stored.select(query * step)
        assert torch.equal(chosen, sourced.select(query * step)[0])
        stored.fetch(chosen, valid, step)
        sourced.fetch(chosen, valid, step)
        assert torch.equal(hot_a.keys, hot_b.keys) and torch.equal(hot_a.values, hot_b.values)
        assert torch.equal(hot_a.active, hot_b.active)
    assert all(t.data_ptr() != flat_k.data_ptr() for t in stored.cold_tensors())
    assert sourced.cold_tensors()[0].dtype == torch.int32  # token indices only, besides any staging


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    n_chunks=st.integers(1, 12),
    chunk=st.integers(1, 16),
    dim=st.sampled_from([4, 8, 32]),
    rows=st.integers(1, 6),
    scale=st.sampled_from([0.01, 1.0, 30.0]),
)
def test_chunk_score_never_below_true_max(seed, n_chunks, chunk, dim, rows, scale):
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(1, n_chunks, chunk, dim, generator=g) * scale
    query = torch.randn(1, rows, dim, generator=g) * scale
    kmin, kmax = chunk_bounds(keys[0])
    bound = upper_bound_scores(query, kmin[None], kmax[None])[0]  # [n_chunks]
    per_row = torch.einsum("rd,ncd->nrc", query[0], keys[0]).amax(-1)  # best key of each chunk per row
    true = per_row.sum(-1)
    tol = 1e-5 * (1 + true.abs())
    assert torch.all(bound >= true - tol)
    # "max" bounds every row's best key, and is itself reached by some row's bound (it is not looser)
    bound_max = upper_bound_scores(query, kmin[None], kmax[None], "max")[0]
    top = per_row.amax(-1)
    assert torch.all(bound_max >= top - 1e-5 * (1 + top.abs()))
    each = [upper_bound_scores(query[:, r : r + 1], kmin[None], kmax[None])[0] for r in range(rows)]
    per_row_bounds = torch.stack(each)
    torch.testing.assert_close(bound_max, per_row_bounds.amax(0))


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    chunk=st.integers(1, 8),
    group=st.integers(1, 3),
    extra=st.integers(0, 2),
    uneven=st.booleans(),
)
def test_retrieving_all_chunks_equals_dense_attention(seed, lengths, chunk, group, extra, uneven):
    """Heads with different token counts (partial last chunks, or partial chunks anywhere, as image tiles
    and text runs give); budget covers all chunks."""
    g = torch.Generator().manual_seed(seed)
    dim, heads = 8, len(lengths)
    bodies_k = [torch.randn(n, dim, generator=g) for n in lengths]
    bodies_v = [torch.randn(n, dim, generator=g) for n in lengths]
    sizes = [runs_of(n, chunk) for n in lengths]
    if uneven:  # cut each body at random points into chunks of 1..chunk tokens
        sizes = []
        for n in lengths:
            cuts: list[int] = []
            while sum(cuts) < n:
                cuts.append(min(n - sum(cuts), int(torch.randint(1, chunk + 1, (1,), generator=g))))
            sizes.append(cuts)
    n_chunks = [len(s) for s in sizes]
    store, hot = make_store(bodies_k, bodies_v, n_chunks, chunk, extra, sizes)
    query = torch.randn(heads, group, dim, generator=g)
    chosen, valid = store.select(query)
    assert int(valid.sum()) == sum(n_chunks)
    store.fetch(chosen, valid, step=1)
    col_seg = torch.arange(heads).repeat_interleave(group)
    out, lse = segment_attention(query.reshape(-1, dim), col_seg, hot.keys, hot.values, hot.seg, 0.5, active=hot.active)
    for h in range(heads):
        k, v = bodies_k[h], bodies_v[h]
        p = torch.softmax(query[h] @ k.T * 0.5, dim=-1)
        torch.testing.assert_close(out[h * group : (h + 1) * group], p @ v, atol=1e-5, rtol=1e-5)
    # a second fetch of the same selection is all hits
    again = store.fetch(chosen, valid, step=2)
    assert again.misses == 0 and again.hits == sum(n_chunks)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n_select=st.integers(0, 5), n_chunks=st.integers(5, 9))
def test_retrieval_attends_at_most_the_budget(seed, n_select, n_chunks):
    g = torch.Generator().manual_seed(seed)
    tokens = n_chunks * 4 - 1  # a partial last chunk
    bodies = [torch.randn(tokens, 8, generator=g)], [torch.randn(tokens, 8, generator=g)]
    store, hot = make_store(*bodies, [n_select], 4, 2)
    for step in range(1, 4):
        query = torch.randn(1, 2, 8, generator=g)
        chosen, valid = store.select(query)
        store.fetch(chosen, valid, step)
        assert int(store.slot_active.sum()) == n_select
        assert int(hot.active.sum()) <= n_select * 4  # tokens attended never exceed the budget
        # the resident, active chunks are exactly the top-scored ones for this query
        scores = upper_bound_scores(query, store.kmin, store.kmax, store.scoring)[0]
        expected = set(scores.topk(n_select).indices.tolist()) if n_select else set()
        assert set(store.slot_chunk[store.slot_active].tolist()) == expected


def test_segment_and_tail_merge_equal_softmax_over_union():
    g = torch.Generator().manual_seed(0)
    b, hkv, grp, q, dim = 2, 3, 2, 3, 8
    hq = hkv * grp
    lens = torch.randint(1, 7, (b * hkv,), generator=g)
    k_flat = torch.randn(int(lens.sum()), dim, generator=g)
    v_flat = torch.randn(int(lens.sum()), dim, generator=g)
    seg = torch.repeat_interleave(torch.arange(b * hkv), lens)
    tail_k = torch.randn(b, hkv, 5, dim, generator=g)
    tail_v = torch.randn(b, hkv, 5, dim, generator=g)
    query = torch.randn(b, hq, q, dim, generator=g)
    col_seg = (torch.arange(b * hq) // grp).repeat_interleave(q)
    o1, l1 = segment_attention(query.reshape(-1, dim), col_seg, k_flat, v_flat, seg, 0.3)
    o2, l2 = tail_attention(query, tail_k, tail_v, 0.3)
    out = merge_partials([o1, o2], [l1, l2]).reshape(b, hq, q, dim)
    for bi in range(b):
        for h in range(hq):
            s = bi * hkv + h // grp
            pk = k_flat[seg == s]
            pv = v_flat[seg == s]
            for qi in range(q):
                visible = 5 - q + qi + 1  # causal within the tail
                k = torch.cat([pk, tail_k[bi, h // grp, :visible]])
                v = torch.cat([pv, tail_v[bi, h // grp, :visible]])
                ref = torch.softmax(query[bi, h, qi] @ k.T * 0.3, -1) @ v
                torch.testing.assert_close(out[bi, h, qi], ref, atol=1e-5, rtol=1e-5)
