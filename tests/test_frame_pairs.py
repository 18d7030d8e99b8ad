"""Video frames shown beside the frame before them (``hybridkv.models.frame_pairs``)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from hybridkv.data import export_jsonl, generate_items, load_jsonl
from hybridkv.data.frames import as_clip, frame_index
from hybridkv.embedded.model import item_images
from hybridkv.errors import InputError
from hybridkv.models.frame_pairs import CONFIG_FLAG, pair_frames

BLOCK = 56  # 2x2 blocks: 16 patches of 14 px


def _rows(loaded, image_lists):
    """The processor's pixel rows per image as (patches, channels, temporal slots, patch pixels)."""
    out = loaded.processor.image_processor(images=[im for ims in image_lists for im in ims], return_tensors="pt")
    sizes = out["image_grid_thw"].prod(dim=1).tolist()
    return out, [r.reshape(len(r), 3, 2, -1) for r in out["pixel_values"].split(sizes)]


def _solid(colour):
    return Image.new("RGB", (BLOCK, BLOCK), colour)


def test_each_frame_after_the_first_shows_the_one_before_in_its_first_temporal_slot(loaded):
    still = _solid("white")
    clip = as_clip([_solid("red"), _solid("green"), _solid("blue")])
    other = as_clip([_solid("yellow"), _solid("black")])
    lists = [[still, *clip], list(other)]
    out, rows = _rows(loaded, lists)
    paired = pair_frames(out["pixel_values"], out["image_grid_thw"], lists, 2, 14)
    sizes = out["image_grid_thw"].prod(dim=1).tolist()
    after = [r.reshape(len(r), 3, 2, -1) for r in paired.split(sizes)]
    assert torch.equal(after[0], rows[0]) and torch.equal(after[1], rows[1])  # a still image, a clip's first frame
    for frame, before in ((2, 1), (3, 2), (5, 4)):
        assert torch.equal(after[frame][:, :, 0], rows[before][:, :, 1])  # the frame before ...
        assert torch.equal(after[frame][:, :, 1], rows[frame][:, :, 1])  # ... beside the frame itself
    assert torch.equal(after[4], rows[4])  # the second prompt's clip starts afresh


def test_frames_out_of_order_or_across_prompts_are_refused(loaded):
    clip = as_clip([_solid("red"), _solid("green"), _solid("blue")])
    for lists in ([[clip[0], clip[2]]], [[clip[0]], [clip[1]]], [[clip[1]]]):
        out, _ = _rows(loaded, lists)
        with pytest.raises(InputError, match="does not follow frame"):
            pair_frames(out["pixel_values"], out["image_grid_thw"], lists, 2, 14)


def test_a_model_configured_for_frame_pairs_gets_them_from_build_inputs_and_nothing_else_changes(loaded):
    items = generate_items("video", "test", 2, seed=3) + generate_items("grid", "test", 1, seed=3)
    prompts, images = [it.prompt for it in items], [item_images(it) for it in items]
    plain = loaded.build_inputs(prompts, images)
    setattr(loaded.model.config, CONFIG_FLAG, True)
    try:
        paired = loaded.build_inputs(prompts, images)
    finally:
        delattr(loaded.model.config, CONFIG_FLAG)
    assert set(plain) == set(paired)
    for key in plain:
        if key != "pixel_values":
            assert torch.equal(plain[key], paired[key]), key
    sizes = plain["image_grid_thw"].prod(dim=1).tolist()
    changed = [
        not torch.equal(a, b)
        for a, b in zip(plain["pixel_values"].split(sizes), paired["pixel_values"].split(sizes), strict=True)
    ]
    frames = [frame_index(im) for ims in images for im in ims]
    # Frames whose object moved or appeared differ from the frame before; first frames and the grid never change.
    assert not any(c for c, f in zip(changed, frames, strict=True) if not f)
    assert any(changed)


def test_clip_frames_keep_their_numbers_through_a_jsonl_round_trip(tmp_path):
    (item,) = generate_items("video", "test", 1, seed=1)
    assert [frame_index(f) for f in item.video] == list(range(len(item.video)))
    (back,) = load_jsonl(export_jsonl([item], tmp_path))
    assert [frame_index(f) for f in back.video] == list(range(len(item.video)))
    assert all(frame_index(im) is None for im in back.images)


def test_paired_frames_make_a_moving_objects_direction_a_word_its_blocks_show(loaded):
    from hybridkv.embedded.examples import encode
    from hybridkv.embedded.visual_targets import DERIVED, IGNORE, SHOWN_DERIVED

    (clip,) = generate_items("video", "train", 1, seed=2, questions=("motion",))
    plain = encode(loaded, clip, motion_words=True).visual_targets
    assert (plain[:, SHOWN_DERIVED] == IGNORE).all()  # frames alone: the direction is derived, not shown
    setattr(loaded.model.config, CONFIG_FLAG, True)
    try:
        paired = encode(loaded, clip, motion_words=True).visual_targets
    finally:
        delattr(loaded.model.config, CONFIG_FLAG)
    shown = paired[:, SHOWN_DERIVED] != IGNORE
    assert shown.any() and torch.equal(paired[shown, SHOWN_DERIVED], paired[shown, DERIVED])
    assert (paired[shown, 0] != IGNORE).all()  # on the object's own blocks
    from hybridkv.data.tasks.video import direction_of

    moving = {direction_of(o) for o in clip.meta["objects"] if o["vx"] or o["vy"]}
    named = {loaded.tokenizer.decode([i]) for i in paired[shown, SHOWN_DERIVED].tolist()}
    assert clip.answer in named and named <= moving  # the target's direction, and a moving decoy's if any
    # Named from the second frame on: more blocks than the frames alone name (from a block's move on).
    assert shown.sum() > (plain[:, DERIVED] != IGNORE).sum()


def test_the_model_card_says_how_clips_are_fed(loaded):
    from hybridkv.embedded.card import architecture_of, model_card

    def card() -> str:
        arch = architecture_of(loaded.model.config)
        return model_card(
            {"steps": 1}, [], items_per_task=1, parameters=1, weights_bytes=1, eval_command="x", architecture=arch
        )

    assert "temporal patch" not in card()
    setattr(loaded.model.config, CONFIG_FLAG, True)
    try:
        assert "each frame after a clip's first shows the frame before it" in card()
    finally:
        delattr(loaded.model.config, CONFIG_FLAG)


def test_the_video_probe_script_counts_questions_and_moving_blocks(loaded):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "probe_video.py"
    spec = importlib.util.spec_from_file_location("probe_video", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    asked = probe.per_question(loaded, "validation", 3)
    assert sum(n for _, n in asked.values()) == 3 and all(0 <= r <= n for r, n in asked.values())
    right, blocks = probe.direction_readout(loaded, "validation", 1)
    assert blocks > 0 and 0 <= right <= blocks
