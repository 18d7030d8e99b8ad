"""Chunk-wise retrieval for the dynamic heads of one layer.

Each dynamic head's prompt middle is cut into fixed-size chunks. Chunk bodies live in a cold tier;
their bounds (bf16 min/max keys) and a small set of slots holding recently used chunks stay resident.
Every decode step scores all heads' bounds with one batched matmul, picks each head's top chunks that
fit its budget, and copies in only the chunks that are not already resident (least recently used
slots are reused). No Python loop over heads or chunks runs per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ChunkScoring
from .summaries import chunk_bounds, upper_bound_scores
from .tiers import DiskTier, HostTier


@dataclass
class ColdSource:
    """Chunk bodies read from a cold copy that is already held (a parked prompt) instead of stored again:
    ``keys`` / ``values`` [N, D] token rows, and for each dynamic head the rows of its body, in chunk order."""

    keys: torch.Tensor
    values: torch.Tensor
    positions: list[torch.Tensor]


@dataclass
class FetchResult:
    hits: int
    misses: int


class ChunkStore:
    """Storage and per-step selection for the dynamic heads (those with at least one chunk) of a layer."""

    def __init__(
        self,
        tokens_k: list[torch.Tensor],
        tokens_v: list[torch.Tensor],
        segments: list[int],
        n_select: list[int],
        *,
        chunk_size: int,
        n_slots: list[int],
        slots: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        tier: HostTier | DiskTier,
        device: torch.device,
        scoring: ChunkScoring,
        chunk_sizes: list[list[int]] | None = None,
        source: ColdSource | None = None,
    ) -> None:
        """tokens_k/v: one [n_tokens_h, D] tensor per dynamic head (its prompt middle); segments: b * H_kv + h.

        ``scoring`` is the config's ``chunk_scoring`` (how a GQA group's query heads rank chunks).
        ``slots`` are (keys [TS, C, D], values [TS, C, D], active [TS, C]) views of the layer's hot store,
        with ``n_slots[h]`` consecutive slots per head (see ``slot_counts``).

        Each head's tokens are cut into consecutive chunks of ``chunk_sizes[h]`` tokens (each at most
        ``chunk_size``; default: runs of ``chunk_size``, see ``hybridkv.cache.chunking``); a partial chunk
        is padded with copies of its last key (harmless for min/max) and its padding is never attended.

        ``source``: the bodies already sit in the cold tier (a parked prompt, ``ColdSource``), so chunks are
        read from there by token index instead of being stored a second time.
        """
        self.device = device
        self.scoring = scoring
        self.chunk_size = c = chunk_size
        if chunk_sizes is None:
            chunk_sizes = [runs_of(t.shape[0], c) for t in tokens_k]
        n_chunks = torch.tensor([len(sizes) for sizes in chunk_sizes], dtype=torch.long)
        bodies_k = [_pad_chunks(t, sizes, c) for t, sizes in zip(tokens_k, chunk_sizes, strict=True)]
        self.n_heads = len(bodies_k)
        head_dim = bodies_k[0].shape[2]
        seg_dtype = torch.int16 if max(segments) < 2**15 else torch.int32
        self.segments = torch.tensor(segments, dtype=seg_dtype, device=device)
        self.n_select = torch.tensor(n_select, dtype=torch.long, device=device)
        self.n_chunks = n_chunks.to(device)
        self.chunk_offset = (torch.cumsum(n_chunks, 0) - n_chunks).to(device)
        self.chunk_len = torch.tensor([n for sizes in chunk_sizes for n in sizes], dtype=torch.int16).to(device)

        # resident bounds, padded across heads only to the longest prompt of the batch (tiny: 1/64 of KV)
        c_max = int(n_chunks.max())
        self.kmin = torch.zeros(self.n_heads, c_max, head_dim, dtype=torch.bfloat16, device=device)
        self.kmax = torch.zeros_like(self.kmin)
        for i, body in enumerate(bodies_k):
            lo, hi = chunk_bounds(body)
            self.kmin[i, : body.shape[0]] = lo.to(device)
            self.kmax[i, : body.shape[0]] = hi.to(device)
        self.chunk_valid = torch.arange(c_max, device=device)[None, :] < self.n_chunks[:, None]

        # cold bodies, packed head after head: stored, or token indices into a cold copy already held
        self.source = source
        if source is None:
            bodies_v = [_pad_chunks(t, sizes, c) for t, sizes in zip(tokens_v, chunk_sizes, strict=True)]
            self.cold_k = tier.store(torch.cat(bodies_k))
            self.cold_v = tier.store(torch.cat(bodies_v))
        else:
            index = [_pad_chunks(t, sizes, c) for t, sizes in zip(source.positions, chunk_sizes, strict=True)]
            self.cold_index = torch.cat(index).to(device="cpu", dtype=torch.int32)  # [n_chunks, C]
            self.cold_k, self.cold_v = source.keys, source.values

        # resident slots (views into the layer's hot store), n_slots[h] per head, packed
        n_slots_t = torch.tensor(n_slots, dtype=torch.long, device=device)
        self.n_slots = n_slots_t
        self.slot_offset = torch.cumsum(n_slots_t, 0) - n_slots_t
        self.slot_k, self.slot_v, self.token_active = slots
        total_slots = self.slot_k.shape[0]
        self.slot_chunk = torch.full((total_slots,), -1, dtype=torch.long, device=device)
        self.slot_len = torch.zeros(total_slots, dtype=torch.int16, device=device)
        self.slot_used = torch.zeros(total_slots, dtype=torch.long, device=device)
        self.slot_active = torch.zeros(total_slots, dtype=torch.bool, device=device)
        n_slots = n_slots_t
        m = int(n_slots.max()) if self.n_heads else 0
        self._max_select = max(n_select) if n_select else 0
        self._n_selected = sum(n_select)
        # host staging for chunk copies, pinned so the copy to the accelerator is asynchronous
        self._stage: tuple[torch.Tensor, torch.Tensor] | None = None
        if device.type != "cpu" and total_slots:
            shape = (total_slots * c * head_dim,)  # flat: holds chunk rows or token rows alike
            self._stage = (
                torch.empty(shape, dtype=self.cold_k.dtype, pin_memory=True),
                torch.empty(shape, dtype=self.cold_v.dtype, pin_memory=True),
            )
        ar = torch.arange(m, device=device)
        self._slot_ok = ar[None, :] < n_slots[:, None]
        self._slot_idx = torch.where(self._slot_ok, self.slot_offset[:, None] + ar[None, :], 0)

    # ------------------------------------------------------------------ per decode step
    def select(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """queries [n_heads, R, D] -> (global chunk ids [n_heads, S], valid [n_heads, S])."""
        s = self._max_select
        if s == 0:
            empty = torch.zeros(self.n_heads, 0, dtype=torch.long, device=self.device)
            return empty, empty.bool()
        scores = upper_bound_scores(queries, self.kmin, self.kmax, self.scoring)
        scores.masked_fill_(~self.chunk_valid, float("-inf"))
        top = scores.topk(s, dim=-1).indices
        valid = torch.arange(s, device=self.device)[None, :] < self.n_select[:, None]
        return self.chunk_offset[:, None] + top, valid

    def fetch(self, chosen: torch.Tensor, valid: torch.Tensor, step: int) -> FetchResult:
        """Make every chosen chunk resident, reusing least recently used slots; mark the active slots."""
        if chosen.shape[1] == 0 or self.slot_k.shape[0] == 0:
            self.slot_active.zero_()
            self.token_active.zero_()
            return FetchResult(0, 0)
        res = torch.where(self._slot_ok, self.slot_chunk[self._slot_idx], -2)  # [H, M]
        match = (res[:, :, None] == chosen[:, None, :]) & valid[:, None, :]  # [H, M, S]
        keep_slot = match.any(-1)
        hit = match.any(1)  # [H, S]
        miss = valid & ~hit
        n_miss = miss.sum(1)
        big = torch.iinfo(torch.long).max
        free_key = torch.where(keep_slot | ~self._slot_ok, big, self.slot_used[self._slot_idx])
        free_order = free_key.argsort(dim=1, stable=True)
        miss_order = (~miss).to(torch.int8).argsort(dim=1, stable=True)
        j = min(chosen.shape[1], free_order.shape[1])
        take = torch.arange(j, device=self.device)[None, :] < n_miss[:, None]
        dst_all = self._slot_idx.gather(1, free_order[:, :j])
        src_all = chosen.gather(1, miss_order[:, :j])
        # the one host round trip per layer and step: which chunks to read from the cold tier
        packed = torch.stack([dst_all, src_all, take.long()]).to("cpu")
        take_host = packed[2].bool()
        dst, src = packed[0][take_host], packed[1][take_host]
        misses = int(dst.numel())
        if misses:
            self._copy_in(dst, src)
        res = torch.where(self._slot_ok, self.slot_chunk[self._slot_idx], -2)
        active = ((res[:, :, None] == chosen[:, None, :]) & valid[:, None, :]).any(-1) & self._slot_ok
        flat_idx = self._slot_idx.reshape(-1)
        marks = torch.zeros(self.slot_active.shape, dtype=torch.int8, device=self.device)
        marks.scatter_reduce_(0, flat_idx, active.reshape(-1).to(torch.int8), reduce="amax")
        self.slot_active.copy_(marks.bool())
        stamps = torch.where(active, step, 0).reshape(-1)
        self.slot_used.scatter_reduce_(0, flat_idx, stamps, reduce="amax")
        pos = torch.arange(self.chunk_size, device=self.device)
        self.token_active.copy_(self.slot_active[:, None] & (pos[None, :] < self.slot_len[:, None]))
        return FetchResult(hits=self._n_selected - misses, misses=misses)

    def _copy_in(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        """Copy cold chunks ``src`` into resident slots ``dst`` (both host index tensors)."""
        n, c, d = src.numel(), self.chunk_size, self.slot_k.shape[-1]
        if self.source is None:  # chunk rows of the stored bodies
            rows, flat_k, flat_v = src, self.cold_k.view(-1, c * d), self.cold_v.view(-1, c * d)
        else:  # token rows of the cold copy
            rows, flat_k, flat_v = self.cold_index.index_select(0, src).flatten().long(), self.cold_k, self.cold_v
        if self._stage is None:  # same device: gather straight into the slots
            dst_d, src_d = dst.to(self.device), src.to(self.device)
            self.slot_k.index_copy_(0, dst_d, flat_k.index_select(0, rows).view(n, c, d).to(self.device))
            self.slot_v.index_copy_(0, dst_d, flat_v.index_select(0, rows).view(n, c, d).to(self.device))
        else:
            stage_k, stage_v = self._stage
            out_k = stage_k[: n * c * d].view(rows.numel(), flat_k.shape[1])
            out_v = stage_v[: n * c * d].view(rows.numel(), flat_v.shape[1])
            torch.index_select(flat_k, 0, rows, out=out_k)
            torch.index_select(flat_v, 0, rows, out=out_v)
            dst_d = dst.to(self.device, non_blocking=True)
            src_d = src.to(self.device, non_blocking=True)
            self.slot_k.index_copy_(0, dst_d, out_k.view(n, c, d).to(self.device, non_blocking=True))
            self.slot_v.index_copy_(0, dst_d, out_v.view(n, c, d).to(self.device, non_blocking=True))
        self.slot_chunk.index_copy_(0, dst_d, src_d)
        self.slot_len.index_copy_(0, dst_d, self.chunk_len.index_select(0, src_d))

    # ------------------------------------------------------------------ accounting
    def hot_tensors(self) -> list[torch.Tensor]:
        return [
            self.kmin,
            self.kmax,
            self.chunk_valid,
            self.chunk_len,
            self.slot_chunk,
            self.slot_len,
            self.slot_used,
            self.slot_active,
            self.segments,
            self.n_select,
            self.n_chunks,
            self.chunk_offset,
            self.n_slots,
            self.slot_offset,
            self._slot_ok,
            self._slot_idx,
        ]

    def cold_tensors(self) -> list[torch.Tensor]:
        """Host-side tensors: chunk bodies (or, over a cold copy held elsewhere, their token indices), and the
        pinned staging used to copy them in."""
        own = [self.cold_k, self.cold_v] if self.source is None else [self.cold_index]
        return own + (list(self._stage) if self._stage is not None else [])


def slot_counts(n_chunks: list[int], n_select: list[int], extra_slots: int) -> list[int]:
    """Resident slots per dynamic head: what one step attends, plus ``extra_slots`` kept for reuse."""
    return [min(n, s + extra_slots) for n, s in zip(n_chunks, n_select, strict=True)]


def runs_of(n_tokens: int, chunk_size: int) -> list[int]:
    """Chunk sizes of ``n_tokens`` cut in runs of ``chunk_size`` (the last one partial)."""
    return [chunk_size] * (n_tokens // chunk_size) + ([n_tokens % chunk_size] if n_tokens % chunk_size else [])


def _pad_chunks(tokens: torch.Tensor, sizes: list[int], chunk_size: int) -> torch.Tensor:
    """[n, D] cut into chunks of ``sizes`` -> [len(sizes), C, D], each padded with copies of its last token."""
    lengths = torch.tensor(sizes, dtype=torch.long, device=tokens.device)
    offsets = torch.cumsum(lengths, 0) - lengths
    within = torch.arange(chunk_size, device=tokens.device)
    index = offsets[:, None] + torch.minimum(within[None, :], lengths[:, None] - 1)
    return tokens[index]
