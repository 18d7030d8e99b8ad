"""Stable randomness and the split partition.

Everything is derived from blake2b digests of explicit parts, never from Python's salted `hash()`,
so an item is a pure function of (task, split, index, seed, options) on every machine and run.
The split of an item is a function of its content key alone (not of the seed or the index), which
is what makes the splits disjoint by construction, across seeds as well.
"""

from __future__ import annotations

import hashlib

import numpy as np

SPLITS: tuple[str, ...] = ("train", "validation", "test")
# Cumulative upper bounds of each split's share of the content space, in SPLITS order.
_SPLIT_BOUNDS: tuple[float, ...] = (0.8, 0.9, 1.0)


def digest(*parts: object) -> bytes:
    """A 16-byte digest of the parts; the separator keeps ("ab", "c") and ("a", "bc") apart."""
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def make_rng(*parts: object) -> np.random.Generator:
    """A numpy Generator seeded from the digest of the parts."""
    entropy = int.from_bytes(digest(*parts), "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def split_of(task: str, content_key: str) -> str:
    """The one split that owns this content: train 80 %, validation 10 %, test 10 % of the space."""
    u = int.from_bytes(digest("split", task, content_key)[:8], "little") / 2.0**64
    for split, bound in zip(SPLITS, _SPLIT_BOUNDS, strict=True):
        if u < bound:
            return split
    return SPLITS[-1]
