"""Learning rate as a pure function of the step: linear warmup, then cosine decay to a floor.

A function of the step alone (no scheduler object) means resuming needs no scheduler state.
"""

from __future__ import annotations

import math

FLOOR = 0.1  # the last step still trains at 10 % of the peak rate


def learning_rate(step: int, peak: float, total_steps: int, warmup_steps: int) -> float:
    """Rate for 0-based ``step``: ramps to ``peak`` over ``warmup_steps``, reaches ``FLOOR * peak`` at the last step."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak * (FLOOR + (1.0 - FLOOR) * 0.5 * (1.0 + math.cos(math.pi * progress)))
