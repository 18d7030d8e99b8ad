"""Read-out turns: whole lists, grid rows and scenes spelled out, for training only."""

from __future__ import annotations

import numpy as np
import pytest

from hybridkv.data import generate_items
from hybridkv.embedded.readouts import READOUTS, readouts

_SMALL = {"long_mixed": {"min_images": 2, "max_images": 3}}


@pytest.mark.parametrize("task", sorted(READOUTS))
def test_readouts_spell_out_the_content_and_are_deterministic(task):
    (item,) = generate_items(task, "train", 1, seed=5, **_SMALL.get(task, {}))
    first = readouts(item, 2, np.random.default_rng(0))
    assert first == readouts(item, 2, np.random.default_rng(0))
    assert first and len(set(first)) == len(first)
    meta = item.meta
    for prompt, answer in first:
        words = answer.split(" ")
        if task == "text_copy":
            assert words == meta["words"]
        elif task in ("grid", "long_mixed"):
            grids = [meta["grid"]] if task == "grid" else meta["grids"]
            assert any(words == list(row) for g in grids for row in g["cells"])
            assert "row" in prompt
        else:
            objects = meta["objects"] if task != "multi_image" else [o for im in meta["images"] for o in im["objects"]]
            assert len(words) % 2 == 0
            pairs = list(zip(words[::2], words[1::2], strict=True))
            assert all({"colour": c, "shape": s} in [{"colour": o["colour"], "shape": o["shape"]} for o in objects]
                       for c, s in pairs)  # fmt: skip


def test_scenes_are_read_in_slot_order():
    (item,) = generate_items("attribute", "train", 1, seed=1, min_objects=4, max_objects=4)
    (_, answer), = readouts(item, 1, np.random.default_rng(0))
    ordered = sorted(item.meta["objects"], key=lambda o: (o["row"], o["col"]))
    assert answer == " ".join(f"{o['colour']} {o['shape']}" for o in ordered)


def test_no_readouts_for_video_or_held_out_items():
    (video,) = generate_items("video", "train", 1)
    assert readouts(video, 3, np.random.default_rng(0)) == []
    (held_out,) = generate_items("grid", "validation", 1)
    assert readouts(held_out, 3, np.random.default_rng(0)) == []
