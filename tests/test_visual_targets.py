"""Per-visual-token recognition targets: each 28 px block named by what the generator drew there."""

from __future__ import annotations

import pytest
import torch

from hybridkv.data import generate_items
from hybridkv.data.palette import BLOCK_PX
from hybridkv.embedded.examples import collate, encode
from hybridkv.embedded.visual_targets import (
    COL,
    IGNORE,
    IMAGE,
    MAX_WORDS,
    ROW,
    WIDTH,
    answer_places,
    block_labels,
    item_boxes,
    visual_targets,
)


def _words(blocks) -> list[list[tuple[str, ...]]]:
    return [[words for words, _ in row] for row in blocks]


def _names(tokenizer, ids: torch.Tensor) -> list[tuple[str, ...]]:
    return [tuple(tokenizer.decode([i]) for i in row.tolist() if i != IGNORE) for row in ids[:, :MAX_WORDS]]


def test_grid_blocks_name_their_cell_and_headers_their_digit(loaded):
    (item,) = generate_items("grid", "train", 1, seed=3, rows=3, cols=11, cell_blocks=2)
    inputs = loaded.build_inputs(item.prompt, list(item.images))
    targets = visual_targets(item, inputs["image_grid_thw"], loaded.tokenizer)
    names = _names(loaded.tokenizer, targets)
    positions = [tuple(row) for row in targets[:, ROW : COL + 1].tolist()]
    cells = item.meta["grid"]["cells"]
    width = 2 * (len(cells[0]) + 1)  # blocks per image row: header column + 11 cells, 2 blocks each
    assert len(names) == width * 2 * (len(cells) + 1)
    colours = item.meta["grid"]["colours"]
    for r, row in enumerate(cells):
        for c, symbol in enumerate(row):
            words = (symbol,) if colours is None else (colours[r][c], symbol)
            for dy in (0, 1):
                for dx in (0, 1):
                    block = (2 * (r + 1) + dy) * width + 2 * (c + 1) + dx
                    assert names[block] == words and positions[block] == (r + 1, c + 1)
    assert names[0] == () and names[1] == ()  # the empty corner
    assert names[2 * 2] == ("2",)  # column 2's header
    assert names[2 * 11] == ("1",) and names[2 * 11 + 1] == ("1",)  # column 11: its digits side by side
    assert names[2 * width] == ("1",) and positions[2 * width] == (1, 0)  # row 1's header
    assert positions[2 * 11] == (0, 11) and positions[0] == (IGNORE, IGNORE)
    assert (targets[:, IMAGE] == 1).all()  # every block knows its image


def test_answers_read_off_a_grid_know_their_cells(loaded):
    import numpy as np

    from hybridkv.embedded.readouts import as_readout_item

    (mixed,) = generate_items("long_mixed", "train", 1, seed=2, min_images=3, max_images=3, rows=3, cols=3)
    inputs = loaded.build_inputs(mixed.prompt, list(mixed.images))
    targets = visual_targets(mixed, inputs["image_grid_thw"], loaded.tokenizer)
    per_image = (inputs["image_grid_thw"].prod(dim=1) // 4).tolist()
    numbers = torch.repeat_interleave(torch.arange(1, len(per_image) + 1), torch.tensor(per_image))
    on_grid = targets[:, ROW] != IGNORE
    assert torch.equal(targets[on_grid, IMAGE], numbers[on_grid])
    assert answer_places(mixed) == [(mixed.meta["image"], mixed.meta["row"], mixed.meta["col"])]

    (grid,) = generate_items("grid", "train", 1, seed=5, rows=3, cols=4)
    readout = as_readout_item(grid, np.random.default_rng(0))
    row = readout.meta["readout"]["row"]
    assert readout.answer == " ".join(grid.meta["grid"]["cells"][row - 1])
    assert answer_places(readout) == [(1, row, c) for c in range(1, 5)]
    example = encode(loaded, readout)
    labelled = example.labels[example.labels != -100]
    places = example.answer_places
    assert places.shape == (len(labelled), 3)
    words = [loaded.tokenizer.decode([int(i)]).strip() for i in labelled[:-1]] + [""]  # end-of-turn last
    assert [tuple(p) for p, w in zip(places.tolist(), words, strict=True) if w] == [(1, row, c) for c in range(1, 5)]
    assert (places[[not w for w in words]] == IGNORE).all()  # spaces and end-of-turn
    (scene,) = generate_items("attribute", "train", 1, seed=5)
    assert answer_places(scene) is None and (encode(loaded, scene).answer_places == IGNORE).all()
    (several,) = generate_items("multi_image", "train", 1, seed=5)
    assert answer_places(several) == [(several.meta["image"], IGNORE, IGNORE)]
    named = as_readout_item(several, np.random.default_rng(0))
    image = named.meta["readout"]["image"]
    assert answer_places(named) == [(image, IGNORE, IGNORE)] * len(named.answer.split())


@pytest.mark.parametrize("task", ["attribute", "counting", "multi_image"])
def test_scene_blocks_name_the_colour_and_shape_of_the_object_on_them(loaded, task):
    (item,) = generate_items(task, "train", 1, seed=11)
    inputs = loaded.build_inputs(item.prompt, list(item.images))
    targets = visual_targets(item, inputs["image_grid_thw"], loaded.tokenizer)
    image_tokens = int((inputs["input_ids"] == loaded.model.config.image_token_id).sum())
    assert targets.shape == (image_tokens, WIDTH)
    assert (targets[:, ROW : COL + 1] == IGNORE).all()  # scenes have no grid positions
    names = set(_names(loaded.tokenizer, targets)) - {()}
    meta = item.meta
    objects = meta["objects"] if task != "multi_image" else [o for im in meta["images"] for o in im["objects"]]
    assert names == {(o["colour"], o["shape"]) for o in objects}


def test_a_block_takes_every_box_covering_a_quarter_of_it():
    half = BLOCK_PX // 2
    boxes = [
        (0, 0, BLOCK_PX + half, BLOCK_PX, ("a",), None),
        (BLOCK_PX + half, 0, 3 * BLOCK_PX, BLOCK_PX, ("b",), None),
    ]
    assert _words(block_labels(boxes, 1, 3)) == [[("a",), ("a", "b"), ("b",)]]
    sliver = [(0, 0, BLOCK_PX // 8, BLOCK_PX, ("c",), None)]
    assert _words(block_labels(sliver, 1, 1)) == [[()]]


def test_video_frames_name_the_objects_drawn_in_them_and_text_only_items_have_no_targets(loaded):
    from hybridkv.embedded.examples import IGNORE_INDEX
    from hybridkv.embedded.visual_targets import answer_places, answer_source_words, sink_share

    (clip,) = generate_items("video", "train", 1, seed=2, min_frames=4, max_frames=4, questions=("appear",))
    boxes = item_boxes(clip)
    target = clip.meta["objects"][0]
    named = [{words for *_, words, _ in frame} for frame in boxes]
    drawn = (target["colour"], target["shape"])
    assert [drawn in frame for frame in named] == [t >= target["start"] for t in range(4)]
    video = encode(loaded, clip)
    assert video.visual_targets.shape[0] == int((video.input_ids == loaded.model.config.image_token_id).sum())
    per_frame = int(video.visual_targets.shape[0]) // len(clip.video)
    assert video.visual_targets[:, IMAGE].tolist() == [
        f for f in range(1, len(clip.video) + 1) for _ in range(per_frame)
    ]
    # "in which frame does it first appear": read off the object in every frame showing it, evenly (the
    # first frame of those is the answer)
    assert clip.answer == str(target["start"] + 1)
    assert answer_places(clip) is None and sink_share(clip) == 0.0
    assert answer_source_words(clip) == drawn
    first = int((video.labels != IGNORE_INDEX).nonzero()[0])
    ids = [loaded.tokenizer.decode([int(i)]) for i in video.answer_sources[0] if i != IGNORE]
    assert video.labels[first] != IGNORE_INDEX and ids == list(drawn)
    batch = collate([video], loaded.tokenizer.pad_token_id)
    visual_targets = batch.pop("visual_targets")
    from hybridkv.embedded.guidance import lookup_sources, token_contents, word_tokens

    found = token_contents(batch, visual_targets, (loaded.model.config.image_token_id,))
    query = torch.nonzero(batch["labels"][:, 1:] != IGNORE_INDEX)
    words = batch["labels"][:, 1:][batch["labels"][:, 1:] != IGNORE_INDEX]
    sources = lookup_sources(
        found,
        query[:, 0],
        query[:, 1],
        words,
        word_tokens(loaded.tokenizer),
        batch["answer_places"],
        batch["answer_sources"],
    )
    frames = found.places[0][sources[0]][:, 0]
    assert sorted(set(frames.tolist())) == list(range(target["start"] + 1, len(clip.video) + 1))
    (text,) = generate_items("text_copy", "train", 1, seed=4, distractor_prob=0.0)
    assert encode(loaded, text).visual_targets is None
    (grid,) = generate_items("grid", "train", 1, seed=5, rows=3, cols=3)
    batch = collate([encode(loaded, grid), video, encode(loaded, text)], loaded.tokenizer.pad_token_id)
    assert batch["visual_targets"].shape[0] == int((batch["input_ids"] == loaded.model.config.image_token_id).sum())


def test_recognition_and_position_losses_train_the_vision_tower_only_when_asked(loaded):
    from hybridkv.embedded.training import LossWeights, train_step_loss

    (item,) = generate_items("grid", "train", 1, seed=6, rows=3, cols=3)
    examples = [encode(loaded, item)]
    model = loaded.model
    first = next(model.model.visual.parameters())
    grads, losses = [], []
    for recognition, position in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)):
        model.zero_grad(set_to_none=True)
        weights = LossWeights(recognition=recognition, position=position)
        loss, per_label = train_step_loss(loaded, examples, 4096, weights)
        assert ("(recognition)" in per_label) == (recognition > 0) and ("(position)" in per_label) == (position > 0)
        grads.append(first.grad.clone())
        losses.append(loss)
    model.zero_grad(set_to_none=True)
    assert losses[0] == pytest.approx(losses[1]) == pytest.approx(losses[2])  # the step loss is the answers'
    for extra in grads[1:]:  # each extra term reaches the vision tower's first layer
        assert not torch.allclose(grads[0], extra)
    with pytest.raises(Exception, match="recognition_loss"):
        from hybridkv.embedded.training import TrainSettings

        TrainSettings(recognition_loss=-1.0)
    with pytest.raises(Exception, match="position_loss"):
        from hybridkv.embedded.training import TrainSettings

        TrainSettings(position_loss=-1.0)


def test_moving_objects_name_their_direction_once_they_have_moved_a_block():
    from hybridkv.embedded.visual_targets import motion_boxes

    meta = {
        "object_px": 28,
        "objects": [
            {"shape": "circle", "colour": "red", "cx": 40, "cy": 40, "vx": 14, "vy": 0, "start": 0},
            {"shape": "square", "colour": "red", "cx": 120, "cy": 120, "vx": 0, "vy": 0, "start": 0},
            {"shape": "square", "colour": "blue", "cx": 120, "cy": 40, "vx": 0, "vy": -14, "start": 1},
        ],
    }
    assert motion_boxes(meta, 0) == [] and motion_boxes(meta, 1) == []  # half a block: not yet
    (right,) = motion_boxes(meta, 2)
    assert right[4] == ("right",) and right[0] == 40 + 28 - 14  # where the circle is in frame 2
    assert [box[4] for box in motion_boxes(meta, 3)] == [("right",), ("up",)]  # the square started at frame 1
    # Fed as frame pairs, a frame's tokens show the move from the frame before: named from the second frame on.
    assert motion_boxes(meta, 0, frame_pairs=True) == []
    assert [box[4] for box in motion_boxes(meta, 1, frame_pairs=True)] == [("right",)]  # the square is new
    assert [box[4] for box in motion_boxes(meta, 2, frame_pairs=True)] == [("right",), ("up",)]


def test_counting_objects_name_how_many_of_their_kind_the_scene_holds_when_asked(loaded):
    from collections import Counter

    from hybridkv.embedded.visual_targets import DERIVED

    (scene,) = generate_items("counting", "train", 1, seed=7, max_count=4, min_distractors=3, max_distractors=3)
    kinds = Counter((o["colour"], o["shape"]) for o in scene.meta["objects"])
    plain = encode(loaded, scene).visual_targets
    assert (plain[:, DERIVED] == IGNORE).all()  # only when asked for
    targets = encode(loaded, scene, count_words=True).visual_targets
    named = targets[:, DERIVED] != IGNORE
    assert torch.equal(named, targets[:, 0] != IGNORE)  # every block naming an object names its count
    for row in targets[named]:
        colour, shape = (loaded.tokenizer.decode([i]) for i in row[:MAX_WORDS].tolist())
        assert loaded.tokenizer.decode([int(row[DERIVED])]) == str(kinds[(colour, shape)])
    assert str(kinds[(scene.meta["colour"], scene.meta["shape"])]) == scene.answer or scene.answer == "0"


def test_coordinates_are_asked_along_fixed_directions_of_tokens_with_a_known_place():
    from hybridkv.embedded.guidance import COORDINATE_STEP, _fixed_readout, coordinate_token_losses

    targets = torch.full((3, WIDTH), IGNORE)
    targets[0, ROW], targets[0, COL] = 2, 5
    targets[2, ROW], targets[2, COL] = 0, 1  # a header: row 0
    directions = _fixed_readout(4, 8, 2)
    directions = directions / directions.norm(dim=0, keepdim=True)
    exact = torch.zeros(3, 8)
    for i in (0, 2):  # tokens whose read-out along the directions is exactly their (row, column)
        wanted = COORDINATE_STEP * targets[i, ROW : COL + 1].float()
        exact[i] = torch.linalg.lstsq(directions.T, wanted[:, None]).solution[:, 0]
    losses = coordinate_token_losses(None, exact, targets)
    assert losses.shape == (2,) and torch.allclose(losses, torch.zeros(2), atol=1e-10)  # the unplaced one skipped
    moved = exact.clone()
    moved[0] += directions[:, 1] * COORDINATE_STEP  # one column further along: the read-outs shift linearly
    shift = COORDINATE_STEP * (directions.T @ directions[:, 1])  # (row, column) read-out changes
    assert coordinate_token_losses(None, moved, targets)[0] == pytest.approx(float(shift.pow(2).mean()), rel=1e-5)
