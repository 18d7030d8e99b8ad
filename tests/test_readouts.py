"""Read-out turns: whole lists, grid rows and scenes spelled out, for training only."""

from __future__ import annotations

import numpy as np
import pytest

from hybridkv.data import generate_items
from hybridkv.data.question import split_question
from hybridkv.embedded.readouts import READOUTS, as_readout_item, readouts
from hybridkv.errors import ConfigError

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
    ((_, answer),) = readouts(item, 1, np.random.default_rng(0))
    ordered = sorted(item.meta["objects"], key=lambda o: (o["row"], o["col"]))
    assert answer == " ".join(f"{o['colour']} {o['shape']}" for o in ordered)


def test_no_readouts_for_video_or_held_out_items():
    (video,) = generate_items("video", "train", 1)
    assert readouts(video, 3, np.random.default_rng(0)) == []
    (held_out,) = generate_items("grid", "validation", 1)
    assert readouts(held_out, 3, np.random.default_rng(0)) == []


@pytest.mark.parametrize("task", [*sorted(READOUTS), "video"])
def test_a_readout_item_keeps_the_context_and_replaces_only_the_question(task):
    (item,) = generate_items(task, "train", 1, seed=7, **_SMALL.get(task, {}))
    asked = as_readout_item(item, np.random.default_rng(0))
    if task == "video":
        assert asked is None  # no read-out for clips
        return
    ((prompt, answer),) = readouts(item, 1, np.random.default_rng(0))
    context, question = split_question(item.prompt)
    assert asked.prompt.startswith(context) and asked.prompt.endswith(prompt)
    assert question not in asked.prompt and asked.answer == answer
    assert asked.images == item.images and asked.split == "train"
    if task == "text_copy":  # the probe's layout: the list, then the instruction on its own line
        assert asked.prompt == context + "Repeat the list."


def test_readout_items_replace_a_share_of_questions_in_a_step():
    from hybridkv.embedded.mixture import Variant
    from hybridkv.embedded.model import build_untrained
    from hybridkv.embedded.prefetch import step_examples
    from hybridkv.embedded.training import TrainSettings

    loaded = build_untrained(seed=0)
    mixture = (Variant("tc", "text_copy", 1.0), Variant("v", "video", 1.0, {"min_frames": 2, "max_frames": 3}))
    labels = [e.label for s in range(6) for e in step_examples(loaded, mixture, _settings(TrainSettings, 0.5), s)]
    assert "tc/readout" in labels and "tc" in labels and "v" in labels
    assert "v/readout" not in labels  # video has no read-out, so its items keep their question
    none = [e.label for s in range(6) for e in step_examples(loaded, mixture, _settings(TrainSettings, 0.0), s)]
    assert not any(label.endswith("/readout") for label in none)
    with pytest.raises(ConfigError):
        TrainSettings(readout_items=1.5)


def _settings(cls, share):
    return cls(steps=10, batch_size=4, follow_ups=0, readout_items=share)
