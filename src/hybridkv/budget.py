"""KV budgets as pure functions: how many tokens each KV head may keep, and how a dynamic head spends them.

Tested without a model. Every budget is clamped: never below the sink + window floor (so a head never
loses its anchors, as silently emptied heads are a known failure of other compressors), never above
the prompt itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import validate_budget


def prompt_tokens_budget(budget: float | int, prompt_len: int, *, floor: int) -> int:
    """Tokens one KV head keeps for a prompt of ``prompt_len`` tokens.

    A ratio is rounded up (a 10% budget of 5 tokens keeps 1, not 0); the result is clamped to
    ``[min(floor, prompt_len), prompt_len]``.
    """
    validate_budget(budget)
    if prompt_len <= 0:
        return 0
    if isinstance(budget, float):
        tokens = math.ceil(budget * prompt_len - 1e-9)
    else:
        tokens = budget
    return max(min(floor, prompt_len), min(tokens, prompt_len))


def uniform_head_budgets(budget: float | int, prompt_lens: torch.Tensor, n_heads: int, *, floor: int) -> torch.Tensor:
    """Even split: every KV head of row b keeps the same number of tokens. Returns a long [B, n_heads]."""
    per_row = [prompt_tokens_budget(budget, int(n), floor=floor) for n in prompt_lens.tolist()]
    return torch.tensor(per_row, dtype=torch.long).unsqueeze(1).expand(-1, n_heads).clone()


@dataclass(frozen=True)
class DynamicLayout:
    """How a dynamic head of one prompt splits into always-resident tokens and retrievable chunks.

    The prompt is ``sinks`` tokens, then ``n_chunks`` chunks of ``chunk_size`` tokens, then a recent
    window of ``window`` tokens; the window absorbs the remainder so that every chunk is full.
    """

    sinks: int
    n_chunks: int
    chunk_size: int
    window: int
    n_select: int  # chunks attended per decode step

    @property
    def resident_tokens(self) -> int:
        return self.sinks + self.window

    @property
    def attended_tokens(self) -> int:
        return self.resident_tokens + self.n_select * self.chunk_size


def dynamic_layout(prompt_len: int, budget_tokens: int, *, sinks: int, window: int, chunk_size: int) -> DynamicLayout:
    """Split a dynamic head's prompt so that sinks + window + selected chunks never exceed its budget."""
    sinks = min(sinks, prompt_len)
    middle = max(prompt_len - sinks - window, 0)
    n_chunks = middle // chunk_size
    window_eff = prompt_len - sinks - n_chunks * chunk_size
    spare = budget_tokens - sinks - window_eff
    n_select = max(0, min(n_chunks, spare // chunk_size))
    return DynamicLayout(sinks=sinks, n_chunks=n_chunks, chunk_size=chunk_size, window=window_eff, n_select=n_select)
