"""One layer of the HybridKV cache: full prompt at prefill, then per-head compressed storage.

Lifecycle (explicit state, never guessed from the model's arguments):

* ``EMPTY``     -> ``update`` receives the prompt's K/V and holds them in full -> ``PREFILLED``;
* ``PREFILLED`` -> the hybridkv attention computes exact prefill attention, then ``compress`` keeps
  per-head sets and frees the full K/V -> ``COMPRESSED``;
* ``COMPRESSED`` -> each ``update`` appends to a dense tail shared by all heads; ``attend`` reads the
  packed resident tokens, the retrieved chunks and the tail.

In a session whose config selects at question time (``HybridKVConfig.select_at``), ``compress`` parks
the prompt whole in the cold tier instead (``PARKED``); the first append after it (the question) brings
it back, classifies and compresses it with the question's queries (``select_for_question``), and a
``crop`` back to the prompt parks it again for the next question.

Storage after compression (per KV head, its own length, nothing padded to a layer maximum):
static heads keep their text-prior selection; dynamic heads keep sinks + recent window resident and
their middle in the chunk store (cold bodies, resident bounds and slots).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from transformers.cache_utils import CacheLayerMixin

from ..budget import dynamic_layout
from ..classify import classify_static, head_scores
from ..errors import CacheStateError, InputError
from ..kernels import merge_partials, segment_attention, tail_attention
from ..token_types import TokenType
from .allocation import fastv_ranking, layer_budgets
from .chunk_store import ChunkStore, ColdSource, runs_of, slot_counts
from .chunking import chunk_groups
from .context import CacheContext
from .decode_eviction import DecodeEviction
from .hot_store import HotStore
from .prefill import (
    SELECTORS,
    accumulated_attention,
    analyse_window,
    keep_by_modality,
    keep_by_priority,
    key_validity,
    merge_evicted,
    pooled_importance,
    protected_positions,
)
from .stats import LayerHeads, storage_bytes


class Phase(Enum):
    EMPTY = "empty"
    PREFILLED = "prefilled"
    PARKED = "parked"
    COMPRESSED = "compressed"


@dataclass
class ParkedPrompt:
    """The whole prompt KV of a layer, in the cold tier, waiting for the question that selects from it."""

    keys: torch.Tensor
    values: torch.Tensor
    key_valid: torch.Tensor


_NOT_ATTACHED = (
    "layer {i} of the HybridCache was used without the hybridkv attention function; run generation inside "
    "`with method(model):` (or load the model with hybridkv.load_model) so the cache can compress"
)


class HybridLayer(CacheLayerMixin):
    """Per-head variable-length storage for one decoder layer."""

    is_compileable = False
    is_croppable = True  # the tail only: tokens appended after the compressed prompt

    def __init__(self, layer_idx: int, ctx: CacheContext) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.ctx = ctx
        self._clear()

    def _clear(self) -> None:
        self.phase = Phase.EMPTY
        self.keys = self.values = None
        self.is_initialized = False
        self.logical_len = 0
        self.prompt_len = 0
        self.batch = 0
        self.kv_heads = 0
        self.hot: HotStore | None = None
        self.eviction: DecodeEviction | None = None  # H2O: evicts kept prompt tokens while decoding
        self.chunks: ChunkStore | None = None
        self.dyn_index: torch.Tensor | None = None  # (b, h) of heads in the chunk store
        self.tail_k = self.tail_v = None
        self.tail_len = 0
        # of the tail, tokens appended several at a time (a chat turn: the question asked after compression);
        # they are input, kept beside the budget as every method keeps them, and only generated tokens make
        # H2O evict
        self.turn_len = 0
        self.heads: LayerHeads | None = None
        self.row_lengths: list[int] = []  # real (unpadded) prompt tokens per row
        self.parked: ParkedPrompt | None = None
        self._awaiting_attention = False

    # ------------------------------------------------------------------ CacheLayerMixin
    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.batch, self.kv_heads, _, self.head_dim = key_states.shape
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if self._awaiting_attention or self.phase is Phase.PREFILLED:
            raise CacheStateError(_NOT_ATTACHED.format(i=self.layer_idx))
        q = key_states.shape[-2]
        if self.phase is Phase.EMPTY:
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states, value_states
            self.prompt_len = self.logical_len = q
            self.phase = Phase.PREFILLED
            self._awaiting_attention = True
            return key_states, value_states
        self._append_tail(key_states, value_states)
        if q > 1:
            self.turn_len += q
        self.logical_len += q
        self._awaiting_attention = True
        return self.keys, self.values

    def get_seq_length(self) -> int:
        """Logical length (tokens seen), so positions derived from it never shift after eviction."""
        return self.logical_len

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.logical_len + query_length, 0

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self._clear()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        raise CacheStateError("HybridCache does not support beam search; use greedy or sampling (num_beams=1)")

    # ------------------------------------------------------------------ tail (tokens after the prompt)
    def _append_tail(self, k: torch.Tensor, v: torch.Tensor) -> None:
        n = k.shape[-2]
        cap = 0 if self.tail_k is None else self.tail_k.shape[-2]
        if self.tail_len + n > cap:  # grow by ~25% (at least 16 tokens): amortised O(1) appends
            new_cap = max(self.tail_len + n, cap + max(16, cap // 4))
            shape = (self.batch, self.kv_heads, new_cap, self.head_dim)
            nk = torch.empty(shape, dtype=k.dtype, device=k.device)
            nv = torch.empty(shape, dtype=v.dtype, device=v.device)
            if self.tail_len:
                nk[:, :, : self.tail_len] = self.tail_k[:, :, : self.tail_len]
                nv[:, :, : self.tail_len] = self.tail_v[:, :, : self.tail_len]
            self.tail_k, self.tail_v = nk, nv
        self.tail_k[:, :, self.tail_len : self.tail_len + n] = k
        self.tail_v[:, :, self.tail_len : self.tail_len + n] = v
        self.tail_len += n
        self.keys = self.tail_k[:, :, : self.tail_len]
        self.values = self.tail_v[:, :, : self.tail_len]

    def crop(self, tokens_to_remove: int) -> None:
        """Forget the newest ``-tokens_to_remove`` tokens (transformers' convention: a negative count).

        Only tokens appended after compression can go: that is what lets a session ask several
        questions against one compressed prompt. The compressed prompt itself cannot be cut back into.
        """
        if tokens_to_remove > 0:
            raise InputError(f"crop takes a negative count of tokens to remove, got {tokens_to_remove}")
        n = -tokens_to_remove
        if n == 0 or self.phase is Phase.EMPTY:
            return
        if self.phase not in (Phase.COMPRESSED, Phase.PARKED) or n > self.tail_len:
            raise CacheStateError(
                f"layer {self.layer_idx}: cannot remove {n} tokens, only the {self.tail_len} appended after the "
                "compressed prompt can be removed; build a new cache to change the prompt"
            )
        self.tail_len -= n
        self.turn_len = min(self.turn_len, self.tail_len)
        self.logical_len -= n
        self.keys = self.tail_k[:, :, : self.tail_len]
        self.values = self.tail_v[:, :, : self.tail_len]
        self._awaiting_attention = False  # what awaited attention (a failed forward) is gone
        if self.parked is not None and self.tail_len == 0:
            self._park_again()

    # ------------------------------------------------------------------ prefill compression
    def compress(self, query: torch.Tensor, attention_mask: torch.Tensor | None, scaling: float) -> None:
        """Classify heads from the observation window and keep, per head, what its type needs (or, in a
        session that selects at question time, park the prompt until the question comes)."""
        if self.phase is not Phase.PREFILLED:
            raise CacheStateError(f"layer {self.layer_idx}: compress() called in phase {self.phase.value}")
        key, value = self.keys, self.values
        b, _, length, _ = key.shape
        key_valid = key_validity(attention_mask, b, length, key.device)
        if self.layer_idx == 0:
            self.ctx.fit_to_prompt(int(key_valid.sum(-1).min()))
        if self.ctx.park_prompt:
            tier = self.ctx.tier
            self.parked = ParkedPrompt(tier.store(key), tier.store(value), key_valid)
            self.row_lengths = [int(n) for n in key_valid.sum(-1).tolist()]
            self.keys = self.values = None  # the full prompt K/V on the accelerator is released here
            self._park_again()
            return
        self._select(query, key, value, key_valid, scaling)

    def select_for_question(self, query: torch.Tensor, scaling: float) -> torch.Tensor:
        """Bring the parked prompt back, attend the tokens just appended (the question) over all of it, as a
        prompt that ends with the question is prefilled, then compress it as that prompt would be: the
        question's queries are the observation window, and the scores see its keys as the prompt's own.

        Returns the question's attention output [B, q, H_q, D]; decoding then reads the compressed cache."""
        if self.phase is not Phase.PARKED or self.parked is None:
            raise CacheStateError(f"layer {self.layer_idx}: select_for_question() called in phase {self.phase.value}")
        if self.tail_len == 0:
            raise CacheStateError(
                f"layer {self.layer_idx}: select_for_question() needs the question appended first (update)"
            )
        dev = query.device
        p = self.parked
        key, value, key_valid = p.keys.to(dev), p.values.to(dev), p.key_valid.to(dev)
        b, hq, q, d = query.shape
        seen_k = torch.cat([key, self.keys.to(key.dtype)], dim=-2)
        seen_valid = torch.cat([key_valid, key_valid.new_ones(b, self.tail_len)], dim=-1)
        out, _ = tail_attention(
            query, seen_k, torch.cat([value, self.values.to(value.dtype)], dim=-2), scaling, key_valid=seen_valid
        )
        self._select(query, key, value, key_valid, scaling, seen=(seen_k, seen_valid))
        return out.reshape(b, hq, q, d).transpose(1, 2).contiguous()

    def _park_again(self) -> None:
        """Drop what the last question selected; the prompt waits whole, in the cold tier, for the next one."""
        self.hot = self.chunks = self.dyn_index = self.eviction = None
        self.phase = Phase.PARKED
        self._awaiting_attention = False

    def _select(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_valid: torch.Tensor,
        scaling: float,
        seen: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """Compress the prompt ``key``/``value`` [B, H_kv, L, D] with the observation window of ``query``.

        ``query`` ends the prompt (prefill), or ends ``seen`` (keys [B, H_kv, L + T, D] and validity [B, L + T]:
        the prompt then a question appended after it, whose keys count in head scores as a question in the
        prompt would, as text).
        """
        b, hkv, length, _ = key.shape
        if self.layer_idx == 0:
            self.ctx.prefill.clear()
        cfg = self.ctx.config
        types = self._token_types(b, length, key.device)
        seen_k, seen_valid = (key, key_valid) if seen is None else seen
        seen_types = types
        if seen_k.shape[-2] > length:
            seen_types = torch.cat([types, types.new_full((b, seen_k.shape[-2] - length), int(TokenType.TEXT))], -1)
        with self.ctx.recorder.timed("classify"):  # part of "compress"; reported to show its cost
            win = analyse_window(query, seen_k, seen_valid, window=cfg.window, scaling=scaling)
            scores = head_scores(cfg.score, win.probs, seen_valid, seen_types, top_ratio=cfg.score_top_ratio)
            prior = None if cfg.profile is None else cfg.profile.static_types()[self.layer_idx]
            static = classify_static(
                scores,
                cfg.theta,
                cfg.head_types,
                mode=cfg.classify,
                rule=cfg.rule,
                dynamic_share=cfg.dynamic_share,
                prior=prior,
                margin=cfg.margin,
            )
        window_probs = win.probs[..., :length]  # the question's own keys are kept in full, beside the budget
        lengths = [int(n) for n in key_valid.sum(-1).tolist()]
        token_probs = window_probs
        if cfg.token_scores == "accumulated":  # H2O: every prompt query, not only the window
            token_probs = accumulated_attention(query, key, key_valid, scaling=scaling)
        importance = pooled_importance(token_probs, cfg.pooling_kernel)
        if cfg.selector == "fastv":
            importance = fastv_ranking(self.ctx, self.layer_idx, importance)
        budgets, split = layer_budgets(
            self.ctx, self.layer_idx, static, scores, lengths, importance, key_valid, types, window_probs
        )

        # static heads: their selector's choice; dynamic heads: sinks (+ window, below) stay resident
        priority = SELECTORS[cfg.selector](importance, types, key_valid)
        if split is None:
            keep = keep_by_priority(priority, key_valid, budgets, sinks=cfg.sinks, window=cfg.kept_window)
        else:
            keep = keep_by_modality(priority, types, key_valid, *split, sinks=cfg.sinks, window=cfg.kept_window)
        if cfg.merge == "average":  # LOOK-M: what static heads evict is merged into what they keep
            evict = static[..., None] & key_valid[:, None, :] & ~keep
            key, value = merge_evicted(key, value, keep, evict)
        sinks_only = protected_positions(key_valid, sinks=cfg.sinks, window=0)[:, None, :]
        resident = torch.where(static[..., None], keep, sinks_only)
        hot_tokens = keep.sum(-1).tolist()
        cold_tokens = [[0] * hkv for _ in range(b)]
        plan = self._plan_dynamic_heads(
            static, budgets, key_valid, lengths, resident, hot_tokens, cold_tokens, priority
        )
        self._store(key, value, resident, plan, query)
        if cfg.evict_during_decode:  # H2O: scores as sums over query rows, so decode queries add on equal terms
            rows = key_valid.sum(-1).to(torch.float32) * (query.shape[1] // hkv)
            sink = protected_positions(key_valid, sinks=cfg.sinks, window=0)[:, None, :].expand(b, hkv, length)
            compressed = budgets < torch.tensor(lengths, device=budgets.device)[:, None]
            self.eviction = DecodeEviction(
                (token_probs.float() * rows[:, None, None])[resident],
                sink[resident],
                budgets.flatten().to(key.device),
                compressed.flatten().to(key.device),
            )
        self.row_lengths = lengths
        self.heads = LayerHeads(
            scores=scores.tolist(),
            static=static.tolist(),
            budget=budgets.tolist(),
            hot_tokens=hot_tokens,
            cold_tokens=cold_tokens,
        )
        # the full prompt K/V is released here; what stays is the tail (the question, when it selected)
        self.keys = self.values = None
        if self.tail_len:
            self.keys, self.values = self.tail_k[:, :, : self.tail_len], self.tail_v[:, :, : self.tail_len]
        self.phase = Phase.COMPRESSED
        self._awaiting_attention = False
        if self.layer_idx == self.ctx.num_layers - 1:
            self.ctx.prefill.clear()

    def _plan_dynamic_heads(
        self,
        static: torch.Tensor,
        budgets: torch.Tensor,
        key_valid: torch.Tensor,
        lengths: list[int],
        resident: torch.Tensor,
        hot_tokens: list[list[int]],
        cold_tokens: list[list[int]],
        priority: torch.Tensor,
    ) -> list[tuple[int, int, slice | torch.Tensor, int, list[int]]]:
        """Lay out each dynamic head (once per prefill): marks its sinks, window and core resident, fills the
        token counts.

        Returns (b, h, body, n_select, chunk sizes) for every dynamic head with a body to retrieve from; the
        body (a slice, or positions when there is a core or image tiles) is the middle of the prompt less the
        core, in chunk order.
        """
        cfg = self.ctx.config
        first_real = (key_valid.long().cumsum(-1) == 0).sum(-1).tolist()  # left padding per row
        plan = []
        chunked: dict[tuple[int, int, int], tuple[slice | torch.Tensor, list[int]]] = {}  # heads sharing a body
        for bi, hi in (~static).nonzero().tolist():
            lay = dynamic_layout(
                lengths[bi],
                int(budgets[bi, hi]),
                sinks=cfg.sinks,
                window=cfg.kept_window,
                chunk_size=cfg.chunk_size,
                core_share=cfg.dynamic_core,
                chunkless_core=cfg.chunkless_core,
            )
            start = first_real[bi] + lay.sinks
            stop = start + lay.middle
            resident[bi, hi, first_real[bi] : start] = True
            resident[bi, hi, stop:] = key_valid[bi, stop:]
            body: slice | torch.Tensor = slice(start, stop)  # without a core, a view of the KV, no gather
            if lay.core:
                # stable: ties (plateaus of max-pooled scores) keep the earlier position, as static heads do
                ranked = priority[bi, hi, start:stop].argsort(descending=True, stable=True) + start
                resident[bi, hi, ranked[: lay.core]] = True
                body = ranked[lay.core :].sort().values
            hot_tokens[bi][hi] = lay.attended_tokens
            cold_tokens[bi][hi] = lay.body
            if lay.body:
                if isinstance(body, slice):  # without a core, a row's heads of one layout share their body
                    key = (bi, body.start, body.stop)
                    if key not in chunked:
                        chunked[key] = self._chunked(bi, body)
                    body, sizes = chunked[key]
                else:
                    body, sizes = self._chunked(bi, body)
                n_select = len(sizes) if lay.n_select >= lay.n_chunks else lay.n_select  # all of them, or what fits
                plan.append((bi, hi, body, n_select, sizes))
        return plan

    def _chunked(self, row: int, body: slice | torch.Tensor) -> tuple[slice | torch.Tensor, list[int]]:
        """The body in chunk order, and its chunks' sizes: image tiles where the prompt's layout is known
        and the config asks for tiles, runs of ``chunk_size`` otherwise (``hybridkv.cache.chunking``)."""
        cfg = self.ctx.config
        layout = self.ctx.layout
        if cfg.chunk_shape == "sequence" or layout is None:
            n = body.stop - body.start if isinstance(body, slice) else body.shape[0]
            return body, runs_of(n, cfg.chunk_size)
        positions = _positions(body)
        return chunk_groups(positions, layout[row], cfg.chunk_size)

    def _store(
        self,
        key: torch.Tensor,
        value: torch.Tensor,
        resident: torch.Tensor,
        plan: list[tuple[int, int, slice | torch.Tensor, int, list[int]]],
        query: torch.Tensor,
    ) -> None:
        """Pack the resident tokens into the hot store and the dynamic heads' middles into the chunk store."""
        cfg = self.ctx.config
        b, hkv, length, _ = key.shape
        counts = resident.sum(-1).flatten()  # boolean indexing flattens in (b, h, l) order
        seg_dtype = torch.int16 if b * hkv < 2**15 else torch.int32  # per-token metadata kept small
        resident_seg = torch.repeat_interleave(torch.arange(b * hkv, device=key.device, dtype=seg_dtype), counts)
        if not plan:
            self.hot = HotStore(key[resident], value[resident], resident_seg)
            return
        segments = [bi * hkv + hi for bi, hi, *_ in plan]
        n_select = [n for *_, n, _ in plan]
        sizes = [chunk_sizes for *_, chunk_sizes in plan]
        bodies_k = [key[bi, hi, body] for bi, hi, body, *_ in plan]
        bodies_v = [value[bi, hi, body] for bi, hi, body, *_ in plan]
        n_slots = slot_counts([len(s) for s in sizes], n_select, cfg.lru_extra_chunks)
        slot_seg = torch.repeat_interleave(
            torch.tensor(segments, device=key.device), torch.tensor(n_slots, device=key.device)
        )
        self.hot = HotStore(key[resident], value[resident], resident_seg, slot_seg, cfg.chunk_size)
        source = None
        if self.parked is not None:  # the bodies are in the parked copy already: read chunks from it
            rows = [(bi * hkv + hi) * length + _positions(body).cpu() for bi, hi, body, *_ in plan]
            pk, pv = self.parked.keys, self.parked.values
            source = ColdSource(pk.view(-1, pk.shape[-1]), pv.view(-1, pv.shape[-1]), rows)
        self.chunks = ChunkStore(
            bodies_k,
            bodies_v,
            segments,
            n_select,
            chunk_size=cfg.chunk_size,
            n_slots=n_slots,
            slots=self.hot.slot_views(cfg.chunk_size),
            tier=self.ctx.tier,
            device=key.device,
            scoring=cfg.chunk_scoring,
            chunk_sizes=sizes,
            source=source,
        )
        self.dyn_index = torch.tensor([(bi, hi) for bi, hi, *_ in plan], dtype=torch.long, device=key.device)
        # warm the slots with the chunks the observation window itself would pick
        w = min(cfg.window, length)
        grouped = query[:, :, -w:, :].reshape(b, hkv, -1, query.shape[-1])
        chosen, valid = self.chunks.select(grouped[self.dyn_index[:, 0], self.dyn_index[:, 1]])
        self.chunks.fetch(chosen, valid, step=0)

    def _token_types(self, batch: int, length: int, device: torch.device) -> torch.Tensor:
        types = self.ctx.token_types
        if types is None:
            return torch.full((batch, length), int(TokenType.TEXT), dtype=torch.long, device=device)
        if tuple(types.shape) != (batch, length):
            raise InputError(
                f"the cache was made for inputs of shape {tuple(types.shape)} but the prompt is {(batch, length)}; "
                "make one cache per prompt with method.make_cache(model, inputs)"
            )
        return types.to(device)

    # ------------------------------------------------------------------ decode attention
    def attend(self, query: torch.Tensor, scaling: float) -> torch.Tensor:
        """Attention of the new queries [B, H_q, q, D] over resident + retrieved + tail; returns [B, q, H_q, D]."""
        if self.phase is not Phase.COMPRESSED:
            raise CacheStateError(f"layer {self.layer_idx}: attend() called in phase {self.phase.value}")
        if self.layer_idx == 0:
            self.ctx.step += 1  # one decode forward = one step, counted once per model call
        step = self.ctx.step - 1
        b, hq, q, d = query.shape
        g = hq // self.kv_heads
        q_cols = query.reshape(b * hq * q, d)
        col_seg = (torch.arange(b * hq, device=query.device) // g).repeat_interleave(q)
        if self.chunks is not None:
            with self.ctx.recorder.timed("retrieval"):
                # the position that predicts the next token selects: a question appended after compression
                # (q > 1) would otherwise pick chunks for all its tokens at once, mostly for text in the tail
                grouped = query[:, :, -1:].reshape(b, self.kv_heads, g, d)
                dq = grouped[self.dyn_index[:, 0], self.dyn_index[:, 1]]  # [n_dyn, G, D]
                chosen, valid = self.chunks.select(dq)
                res = self.chunks.fetch(chosen, valid, step + 1)
                self.ctx.recorder.record_fetch(step, res.hits, res.misses)
        hot = self.hot
        o1, l1, *logits = segment_attention(
            q_cols,
            col_seg,
            hot.keys,
            hot.values,
            hot.seg,
            scaling,
            active=hot.active,
            return_logits=self.eviction is not None,
        )
        o2, l2 = tail_attention(query, self.keys, self.values, scaling)
        out = merge_partials([o1, o2], [l1, l2]).reshape(b, hq, q, d)
        if self.eviction is not None:  # H2O: the same logits, normalised over resident tokens and tail
            self.eviction.accumulate(logits[0], torch.logaddexp(l1, l2))
            self.hot = self.eviction.evict(hot, self.tail_len - self.turn_len)
        self._awaiting_attention = False
        return out.transpose(1, 2).contiguous()

    # ------------------------------------------------------------------ accounting
    def hot_tensors(self) -> list[torch.Tensor | None]:
        own = [self.tail_k, self.tail_v, self.dyn_index] + (self.hot.tensors() if self.hot is not None else [])
        if self.phase is Phase.PREFILLED:
            own += [self.keys, self.values]
        return own + (self.chunks.hot_tensors() if self.chunks is not None else [])

    def cold_tensors(self) -> list[torch.Tensor]:
        parked = [] if self.parked is None else [self.parked.keys, self.parked.values]
        return parked + (self.chunks.cold_tensors() if self.chunks is not None else [])

    def hot_bytes(self) -> int:
        return storage_bytes(self.hot_tensors())

    def cold_bytes(self) -> int:
        return storage_bytes(self.cold_tensors())

    def full_bytes(self) -> int:
        """Bytes a DynamicCache would hold for the same tokens (padded prompt + tail)."""
        if not self.is_initialized:
            return 0
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        return 2 * self.batch * self.kv_heads * self.logical_len * self.head_dim * itemsize


def _positions(body: slice | torch.Tensor) -> torch.Tensor:
    """A dynamic head's body as prompt positions (a slice is a run of them)."""
    return torch.arange(body.start, body.stop) if isinstance(body, slice) else body
