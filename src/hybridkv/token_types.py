"""What kind of content each prompt position holds.

Text-prior pruning and text-centric classification need to know, per position, whether a key came
from text or from an image / video. Model adapters produce a ``[B, L]`` tensor of these codes.
"""

from __future__ import annotations

from enum import IntEnum


class TokenType(IntEnum):
    TEXT = 0
    IMAGE = 1
    VIDEO = 2
