"""Tests of the task suite generator: determinism, disjoint splits, answers readable from pixels."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from hybridkv.data import (
    SPLITS,
    TASKS,
    TaskItem,
    answer_vocabulary,
    content_key,
    export_jsonl,
    generate_items,
    iter_suite,
    load_jsonl,
    normalize_answer,
    render,
    sample_meta,
    score,
    split_of,
    visual_tokens,
)
from hybridkv.data.glyphs import DIGITS, LETTERS, glyph_mask
from hybridkv.data.palette import BACKGROUND, BLOCK_PX, COLOURS, SHAPES
from hybridkv.data.scene import object_centre
from hybridkv.data.tasks.grid import cell_colour, cell_origin, render_cell
from hybridkv.data.tasks.video import direction_of, position
from hybridkv.errors import ConfigError, InputError

N_CHECK = 12  # items per task for the per-item checks


def _fingerprint(item: TaskItem) -> str:
    """Digest of everything the model sees."""
    h = hashlib.sha256()
    h.update(item.prompt.encode())
    h.update(item.answer.encode())
    for image in (*item.images, *(item.video or ())):
        h.update(repr((image.mode, image.size)).encode())
        h.update(image.tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def items_by_task() -> dict[str, list[TaskItem]]:
    return {task: generate_items(task, "test", N_CHECK, seed=3) for task in TASKS}


def test_task_names() -> None:
    assert TASKS == ("grid", "multi_image", "counting", "attribute", "text_copy", "video", "long_mixed")


# --- determinism -----------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_items(task: str) -> None:
    first = generate_items(task, "validation", 3, seed=7)
    second = generate_items(task, "validation", 3, seed=7)
    assert [_fingerprint(i) for i in first] == [_fingerprint(i) for i in second]
    assert first == second
    other_seed = generate_items(task, "validation", 3, seed=8)
    assert [_fingerprint(i) for i in first] != [_fingerprint(i) for i in other_seed]


def test_items_do_not_depend_on_n_or_on_other_items() -> None:
    """Item i is a function of its index, so a longer run extends a shorter one."""
    short = generate_items("counting", "train", 3)
    long = generate_items("counting", "train", 6)
    assert long[:3] == short
    assert [i.id for i in long] == [f"counting/train/{k:05d}" for k in range(6)]


def test_known_item_is_pinned() -> None:
    """A change here means every generated split changed: bump the export format and say so."""
    item = generate_items("attribute", "train", 1)[0]
    assert item.prompt == "What colour is the diamond? Answer with one word."
    assert item.answer == "purple"
    assert _fingerprint(item) == "6d81840f73dac4b9358b2a3ebc861a84e153cee2ba91a6e16a4526197425a8a9"
    assert item.meta == sample_meta("attribute", "train", 0)


# --- split disjointness -------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_splits_are_disjoint(task: str) -> None:
    n = 60 if task == "long_mixed" else 150
    keys: dict[str, set[str]] = {}
    for split in SPLITS:
        metas = [sample_meta(task, split, i) for i in range(n)]
        keys[split] = {content_key(task, meta) for meta in metas}
        assert all(split_of(task, key) == split for key in keys[split])
    assert not keys["train"] & keys["validation"]
    assert not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]
    # Other seeds draw other content, still from the same partition.
    other = {content_key(task, sample_meta(task, "test", i, seed=1)) for i in range(n // 3)}
    assert not other & keys["train"]
    assert not other & keys["validation"]
    assert other - keys["test"]


def test_layout_options_do_not_move_content_between_splits() -> None:
    """Same content at another resolution keeps its key, so resolution can never leak a test item."""
    small = sample_meta("grid", "test", 5, cell_blocks=1)
    large = sample_meta("grid", "test", 5, cell_blocks=3)
    assert content_key("grid", small) == content_key("grid", large)


def test_split_partition_proportions() -> None:
    counts = {split: 0 for split in SPLITS}
    for i in range(4000):
        counts[split_of("grid", f"key-{i}")] += 1
    assert 0.77 < counts["train"] / 4000 < 0.83
    assert 0.08 < counts["validation"] / 4000 < 0.12
    assert 0.08 < counts["test"] / 4000 < 0.12


# --- item validity ------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_items_are_valid(task: str, items_by_task: dict[str, list[TaskItem]]) -> None:
    vocabulary = answer_vocabulary(task)
    for index, item in enumerate(items_by_task[task]):
        assert item.id == f"{task}/test/s3/{index:05d}"
        assert item.task == task and item.split == "test"
        assert item.prompt.strip() and item.answer == item.answer.strip().lower()
        assert item.answer in vocabulary
        assert re.fullmatch(r"[a-z0-9]+", item.answer)
        for image in (*item.images, *(item.video or ())):
            assert image.mode == "RGB"
            assert image.size[0] % BLOCK_PX == 0 and image.size[1] % BLOCK_PX == 0
        if item.video is not None:
            assert 4 <= len(item.video) <= 8 and len(item.video) % 2 == 0
            assert len({frame.size for frame in item.video}) == 1
        assert json.loads(json.dumps(item.meta)) == item.meta
        rerendered = render(task, item.meta)
        assert (rerendered.prompt, rerendered.answer) == (item.prompt, item.answer)
        assert rerendered.images == item.images and rerendered.video == item.video


def test_default_visual_token_counts(items_by_task: dict[str, list[TaskItem]]) -> None:
    def tokens(image: Image.Image) -> int:
        return (image.size[0] // BLOCK_PX) * (image.size[1] // BLOCK_PX)

    for item in items_by_task["long_mixed"]:
        assert 8 <= len(item.images) <= 12
        assert sum(tokens(image) for image in item.images) >= 2000
        assert visual_tokens(item) == sum(tokens(image) for image in item.images)
    for task in ("grid", "counting", "attribute", "multi_image"):
        for item in items_by_task[task]:
            assert all(36 <= tokens(image) <= 400 for image in item.images)
    for item in items_by_task["video"]:
        assert visual_tokens(item) == len(item.video) // 2 * tokens(item.video[0])


def test_vocabulary_follows_options() -> None:
    assert answer_vocabulary("counting", max_count=3) == {"0", "1", "2", "3"}
    assert answer_vocabulary("grid", kinds=["digits"]) == set(DIGITS)
    assert answer_vocabulary("video", questions=["motion"]) == {"left", "right", "up", "down"}


# --- answers are derivable from pixels ------------------------------------------------------------


def _decode_cell(crop: np.ndarray, cell_px: int) -> list[str]:
    """Every symbol whose rendering has exactly the crop's ink mask (grid lines excluded)."""
    ink = (crop != BACKGROUND).any(axis=-1)
    matches = []
    for symbol in (*DIGITS, *LETTERS, *SHAPES):
        ref = np.asarray(render_cell(symbol, (0, 0, 0), cell_px))[1:-1, 1:-1]
        if np.array_equal((ref != BACKGROUND).any(axis=-1), ink):
            matches.append(symbol)
    return matches


def _check_grid_cell(image: Image.Image, grid: dict, cell_blocks: int, row: int, col: int, answer: str) -> None:
    cell_px = cell_blocks * BLOCK_PX
    pixels = np.asarray(image)
    x0, y0 = cell_origin(row - 1, col - 1, cell_blocks)
    crop = pixels[y0 + 1 : y0 + cell_px - 1, x0 + 1 : x0 + cell_px - 1]
    assert _decode_cell(crop, cell_px) == [answer]
    colour = cell_colour(grid, row - 1, col - 1)
    assert tuple(pixels[y0 + cell_px // 2, x0 + cell_px // 2]) == colour or answer not in SHAPES


@pytest.mark.parametrize("cell_blocks", [1, 2])
def test_all_glyphs_and_shapes_are_distinct(cell_blocks: int) -> None:
    cell_px = cell_blocks * BLOCK_PX
    masks = {
        symbol: (np.asarray(render_cell(symbol, (0, 0, 0), cell_px)) != BACKGROUND).any(axis=-1).tobytes()
        for symbol in (*DIGITS, *LETTERS, *SHAPES)
    }
    assert len(set(masks.values())) == len(masks)
    assert glyph_mask("8", 3).shape == (21, 15)


def test_grid_answer_is_read_from_pixels(items_by_task: dict[str, list[TaskItem]]) -> None:
    items = items_by_task["grid"] + generate_items("grid", "train", 6, cell_blocks=1, rows=4, cols=9)
    for item in items:
        meta = item.meta
        rows, cols = len(meta["grid"]["cells"]), len(meta["grid"]["cells"][0])
        assert item.images[0].size == (  # one header row and column
            (cols + 1) * meta["cell_blocks"] * BLOCK_PX,
            (rows + 1) * meta["cell_blocks"] * BLOCK_PX,
        )
        _check_grid_cell(item.images[0], meta["grid"], meta["cell_blocks"], meta["row"], meta["col"], item.answer)


def test_long_mixed_answer_is_read_from_pixels(items_by_task: dict[str, list[TaskItem]]) -> None:
    for item in items_by_task["long_mixed"]:
        meta = item.meta
        k = meta["image"]
        assert f"In image {k}," in item.prompt
        _check_grid_cell(
            item.images[k - 1],
            meta["grids"][k - 1],
            meta["cell_blocks"],
            meta["row"],
            meta["col"],
            item.answer,
        )


def _centre_colour(image: Image.Image, obj: dict, meta: dict) -> tuple[int, ...]:
    cx, cy = object_centre(obj, meta["image_blocks"], meta["slot_blocks"])
    return tuple(int(v) for v in np.asarray(image)[cy, cx])


def test_multi_image_answer_is_in_the_asked_image(items_by_task: dict[str, list[TaskItem]]) -> None:
    for item in items_by_task["multi_image"]:
        meta = item.meta
        assert 3 <= len(item.images) <= 8 and f"{len(item.images)} images" in item.prompt
        for image, content in zip(item.images, meta["images"], strict=True):
            targets = [o for o in content["objects"] if o["shape"] == meta["shape"]]
            assert len(targets) == 1
            assert _centre_colour(image, targets[0], meta) == COLOURS[targets[0]["colour"]]
        colours = [o["colour"] for content in meta["images"] for o in content["objects"] if o["shape"] == "square"]
        assert len(set(colours)) == len(colours)
        asked = meta["images"][meta["image"] - 1]["objects"]
        assert next(o["colour"] for o in asked if o["shape"] == "square") == item.answer


def test_counting_answer_is_the_number_of_matching_objects(items_by_task: dict[str, list[TaskItem]]) -> None:
    answers = set()
    for item in items_by_task["counting"] + generate_items("counting", "train", 30):
        meta = item.meta
        matches = [o for o in meta["objects"] if (o["shape"], o["colour"]) == (meta["shape"], meta["colour"])]
        assert str(len(matches)) == item.answer
        assert f"{meta['colour']} circles" in item.prompt
        for obj in meta["objects"]:
            assert _centre_colour(item.images[0], obj, meta) == COLOURS[obj["colour"]]
        answers.add(item.answer)
    assert len(answers) >= 5  # counts vary, including more than one object


def test_attribute_answer_names_the_other_attribute(items_by_task: dict[str, list[TaskItem]]) -> None:
    for item in items_by_task["attribute"]:
        meta = item.meta
        objects = meta["objects"]
        assert len({o["shape"] for o in objects}) == len(objects) == len({o["colour"] for o in objects})
        target = objects[meta["target"]]
        assert _centre_colour(item.images[0], target, meta) == COLOURS[target["colour"]]
        if meta["ask"] == "colour":
            assert f"the {target['shape']}?" in item.prompt and item.answer == target["colour"]
        else:
            assert f"is {target['colour']}?" in item.prompt and item.answer == target["shape"]


def test_text_copy_answer_is_the_listed_item(items_by_task: dict[str, list[TaskItem]]) -> None:
    with_image = 0
    for item in items_by_task["text_copy"] + generate_items("text_copy", "train", 20):
        k = int(re.search(r"What is item (\d+) of the list\?", item.prompt).group(1))
        listed = dict(re.findall(r"^(\d+)\. (\w+)$", item.prompt, flags=re.MULTILINE))
        assert listed[str(k)] == item.answer
        assert len(set(listed.values())) == len(listed)
        with_image += bool(item.images)
        assert item.video is None
    assert 0 < with_image < 32


def test_video_answer_is_read_from_frames(items_by_task: dict[str, list[TaskItem]]) -> None:
    questions = set()
    for item in items_by_task["video"] + generate_items("video", "train", 12):
        meta = item.meta
        target = meta["objects"][0]
        colour = COLOURS[target["colour"]]
        frames = [np.asarray(frame) for frame in item.video]
        questions.add(meta["question"])
        same = [o for o in meta["objects"] if (o["shape"], o["colour"]) == (target["shape"], target["colour"])]
        assert len(same) == 1
        if meta["question"] == "appear":
            cx, cy = position(target, 0)
            first = next(t for t, f in enumerate(frames) if tuple(f[cy, cx]) == colour)
            assert str(first + 1) == item.answer and first >= 1
            assert all(tuple(f[cy, cx]) == colour for f in frames[first:])
        else:
            centres = [position(target, t) for t in range(len(frames))]
            assert all(tuple(f[cy, cx]) == colour for f, (cx, cy) in zip(frames, centres, strict=True))
            dx, dy = np.subtract(centres[-1], centres[0])
            seen = {(1, 0): "right", (-1, 0): "left", (0, 1): "down", (0, -1): "up"}[(np.sign(dx), np.sign(dy))]
            assert seen == item.answer == direction_of(target)
    assert questions == {"appear", "motion"}


# --- export / load --------------------------------------------------------------------------------


def test_export_load_round_trip(tmp_path) -> None:
    items = list(iter_suite("validation", 2, tasks=[t for t in TASKS if t != "long_mixed"], seed=5))
    items += generate_items("long_mixed", "validation", 1, min_images=2, max_images=2)
    path = export_jsonl(items, tmp_path / "suite")
    assert path.name == "items.jsonl"
    loaded = load_jsonl(path)
    assert loaded == items
    assert [_fingerprint(i) for i in loaded] == [_fingerprint(i) for i in items]
    assert load_jsonl(tmp_path / "suite") == items
    assert not list((tmp_path / "suite").rglob("*.tmp"))
    pngs = list((tmp_path / "suite" / "images").rglob("*.png"))
    assert len(pngs) == sum(len(i.images) + len(i.video or ()) for i in items)


def test_load_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(InputError, match="no item file"):
        load_jsonl(tmp_path / "missing")
    bad = tmp_path / "items.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(InputError, match="malformed"):
        load_jsonl(bad)
    item = generate_items("counting", "test", 1)[0]
    path = export_jsonl([item], tmp_path / "broken")
    next((tmp_path / "broken" / "images").rglob("*.png")).write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read image"):
        load_jsonl(path)


def test_iter_suite_covers_tasks() -> None:
    items = list(iter_suite("train", 1, tasks=["grid", "text_copy"]))
    assert [i.task for i in items] == ["grid", "text_copy"]
    assert [i.task for i in iter_suite("train", 1, tasks="counting")] == ["counting"]


# --- options and errors --------------------------------------------------------------------------


def test_bad_options_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown task"):
        generate_items("nope", "train", 1)
    with pytest.raises(ConfigError, match="unknown split"):
        generate_items("grid", "dev", 1)
    with pytest.raises(ConfigError, match="no option"):
        generate_items("grid", "train", 1, colour="red")
    with pytest.raises(ConfigError, match="rows"):
        generate_items("grid", "train", 1, rows=0)
    with pytest.raises(ConfigError, match="exceeds"):
        generate_items("multi_image", "train", 1, min_images=5, max_images=3)
    with pytest.raises(ConfigError, match="slots"):
        generate_items("counting", "train", 1, max_count=30)
    with pytest.raises(ConfigError, match="seed"):
        generate_items("grid", "train", 1, seed=-1)


def test_options_change_geometry() -> None:
    item = generate_items("long_mixed", "train", 1, min_images=3, max_images=3, rows=4, cols=5, cell_blocks=1)[0]
    assert [image.size for image in item.images] == [(168, 140)] * 3  # 5x4 cells plus headers
    frames = generate_items("video", "test", 1, min_frames=6, max_frames=6, frame_blocks=8)[0].video
    assert len(frames) == 6 and frames[0].size == (224, 224)


# --- scoring -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "answer", "expected"),
    [
        ("Red.", "red", True),
        ("  red  ", "red", True),
        ("RED!", "red", True),
        ("the circle", "circle", True),
        ("A", "a", True),
        ("a circle", "circle", True),
        ("three", "3", True),
        ("3.", "3", True),
        ("left\n", "left", True),
        ("blue", "red", False),
        ("13", "3", False),
        ("red circle", "red", False),
        ("", "red", False),
    ],
)
def test_score(prediction: str, answer: str, expected: bool) -> None:
    assert score(prediction, answer) is expected


@given(st.text(max_size=30))
def test_score_is_reflexive_and_normalisation_idempotent(text: str) -> None:
    assert score(text, text)
    assert normalize_answer(normalize_answer(text)) == normalize_answer(text)
