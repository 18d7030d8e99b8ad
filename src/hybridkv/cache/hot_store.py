"""The accelerator-resident KV of one layer, packed in one buffer so decode reads it with one GEMM.

Layout: ``[resident tokens | chunk slots]`` along the first axis. Resident tokens are what static heads
kept and dynamic heads' sinks and windows; the slot area holds the dynamic heads' retrieved chunks.
Each token carries the segment (``b * H_kv + h``) it belongs to; ``active`` masks slot tokens that are
empty, not selected this step, or padding of a partial chunk.
"""

from __future__ import annotations

import torch


class HotStore:
    def __init__(
        self,
        resident_k: torch.Tensor,
        resident_v: torch.Tensor,
        resident_seg: torch.Tensor,
        slot_seg: torch.Tensor | None = None,
        chunk_size: int = 1,
    ) -> None:
        """resident_*: [N, D] and [N]; slot_seg: segment of every slot [TS] (None: no dynamic heads)."""
        n_res, d = resident_k.shape
        n_slot_tokens = 0 if slot_seg is None else slot_seg.shape[0] * chunk_size
        n = n_res + n_slot_tokens
        self.n_resident = n_res
        self.keys = torch.zeros(n, d, dtype=resident_k.dtype, device=resident_k.device)
        self.values = torch.zeros_like(self.keys)
        self.keys[:n_res] = resident_k
        self.values[:n_res] = resident_v
        self.seg = torch.empty(n, dtype=resident_seg.dtype, device=resident_seg.device)
        self.seg[:n_res] = resident_seg
        self.active: torch.Tensor | None = None
        if slot_seg is not None:
            self.seg[n_res:] = slot_seg.to(resident_seg.dtype).repeat_interleave(chunk_size)
            self.active = torch.ones(n, dtype=torch.bool, device=resident_k.device)
            self.active[n_res:] = False

    def slot_views(self, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(keys [TS, C, D], values [TS, C, D], active [TS, C]) views of the slot area."""
        d = self.keys.shape[-1]
        area = slice(self.n_resident, None)
        assert self.active is not None, "no slot area"
        return (
            self.keys[area].view(-1, chunk_size, d),
            self.values[area].view(-1, chunk_size, d),
            self.active[area].view(-1, chunk_size),
        )

    def resident_counts(self, n_segments: int) -> torch.Tensor:
        """Resident (always attended) tokens per segment."""
        return torch.bincount(self.seg[: self.n_resident].long(), minlength=n_segments)

    def tensors(self) -> list[torch.Tensor | None]:
        return [self.keys, self.values, self.seg, self.active]
