"""What each visual token shows, as words: a per-token recognition target for training the vision tower.

The suite's generators know what every 28 px block of an image holds: a grid cell's glyph or shape (and
its colour), a header's row or column digit, an object's colour and shape, or nothing. Trained only
through one answer word per item, a from-scratch vision tower has to discover recognition and the
language model has to discover where to look at the same time, and neither gets a signal until the
other works. Naming each block's content gives the vision tower a signal of its own from the first
step: the merger's output for a block is scored against the language model's (tied) word embeddings
and trained to name its words (``recognition_loss`` in training). A visual token that already looks
like the embedding of the word it shows can then be copied the way a listed word is copied.

Targets exist for grids (``grid``, ``long_mixed``), scenes (``attribute``, ``counting``,
``multi_image``, ``text_copy``'s distractor image) and video frames (each object where and once it is
drawn). Blocks showing nothing get none.
A block is labelled with the words of every drawn box covering at least a quarter of it.

On request, an object's blocks also name a *derived* word (``DERIVED``), one that no single block or
frame shows, so it is never a recognition target: it is asked of the language model's lower layers
instead, through the word code at the lookup layer's input, and an answer can then be copied from those
blocks as a colour is. ``motion_words``: a moving video object names which way it moves, from the frame
where it has moved a whole block on (the lower layers compare its place with the same object's in the
frames before). ``count_words``: each object of a ``counting`` scene names how many objects of its
colour and shape the scene holds (the lower layers compare objects with objects, where a count read at
the answer compares the question's words with the objects).

Grid blocks also carry their cell's (row, column), 1-based, with 0 for the header row and column, video
frame blocks their own (row, column) in the frame (which way an object moves is where it ends minus
where it starts), and every block its image's number in the item (video frames counted on after the
images):
the language model cannot tell where a visual token sits in its image (M-RoPE's width section barely
turns from one column to the next; see docs/embedded-model.md), so a cell's position has to be
written into its token by the vision tower, and ``position_loss`` in training asks it to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from hybridkv.data import TaskItem
from hybridkv.data.palette import BLOCK_PX
from hybridkv.data.scene import object_centre, object_px
from hybridkv.data.tasks.grid import cell_origin
from hybridkv.data.tasks.video import direction_of
from hybridkv.data.tasks.video import position as frame_position

from .model import item_images

IGNORE = -100
# Words per block at most: a shape and its colour, or the two digits of a header number.
MAX_WORDS = 2
# Target columns: MAX_WORDS word ids, then the grid row, column and image number (IGNORE off grids), then
# a derived word (IGNORE where none, or none asked for), then the derived word again where the block shows it
# (a direction, when frames are paired), a recognition target beside the block's words.
ROW = MAX_WORDS
COL = ROW + 1
IMAGE = ROW + 2
DERIVED = ROW + 3
SHOWN_DERIVED = ROW + 4
WIDTH = MAX_WORDS + 5
# Grid rows and columns the position targets cover (validate_grid allows up to 32; 0 is the header).
MAX_POSITION = 32
# Image numbers the image targets cover (long_mixed allows up to 64 images).
MAX_IMAGE = 64
_MIN_COVER = 0.25

# x0, y0, x1, y1 (exclusive), words, and the grid (row, column) the box belongs to (None off grids).
Box = tuple[int, int, int, int, tuple[str, ...], tuple[int, int] | None]


def grid_boxes(grid: Mapping[str, Any], cell_blocks: int) -> list[Box]:
    """Boxes of a rendered grid: each cell's symbol (with its colour for shapes) and each header digit."""
    cells = grid["cells"]
    cell_px = cell_blocks * BLOCK_PX
    boxes: list[Box] = []
    for r, row in enumerate(cells):
        for c, symbol in enumerate(row):
            x0, y0 = cell_origin(r, c, cell_blocks)
            words = (symbol,) if grid["colours"] is None else (grid["colours"][r][c], symbol)
            boxes.append((x0, y0, x0 + cell_px, y0 + cell_px, words, (r + 1, c + 1)))
    headers = [(cell_origin(-1, c, cell_blocks), c + 1, (0, c + 1)) for c in range(len(cells[0]))]
    headers += [(cell_origin(r, -1, cell_blocks), r + 1, (r + 1, 0)) for r in range(len(cells))]
    for (x0, y0), number, position in headers:
        digits = str(number)
        width = cell_px // len(digits)  # as the renderer splits a header cell between its digits
        for i, digit in enumerate(digits):
            boxes.append((x0 + i * width, y0, x0 + (i + 1) * width, y0 + cell_px, (digit,), position))
    return boxes


def centred_box(cx: int, cy: int, size: int, words: tuple[str, ...]) -> Box:
    """The ``size`` px square an object is drawn in around its centre, named by ``words`` (no grid place)."""
    x0, y0 = cx - size // 2, cy - size // 2
    return (x0, y0, x0 + size, y0 + size, words, None)


def scene_boxes(objects: Sequence[Mapping[str, Any]], image_blocks: int, slot_blocks: int) -> list[Box]:
    """Boxes of a rendered scene: each object's bounding square, named by its colour and shape."""
    size = object_px(slot_blocks)
    boxes: list[Box] = []
    for obj in objects:
        boxes.append(centred_box(*object_centre(obj, image_blocks, slot_blocks), size, (obj["colour"], obj["shape"])))
    return boxes


def frame_boxes(meta: Mapping[str, Any], frame: int) -> list[Box]:
    """Boxes of one video frame (0-based): each object drawn in it, at its position in that frame."""
    size = meta["object_px"]
    boxes: list[Box] = []
    for obj in meta["objects"]:
        if frame >= obj["start"]:
            boxes.append(centred_box(*frame_position(obj, frame), size, (obj["colour"], obj["shape"])))
    return boxes


def motion_boxes(meta: Mapping[str, Any], frame: int, frame_pairs: bool = False) -> list[Box]:
    """Boxes of one video frame (0-based) named by the direction their object moves: each moving object once
    it has moved at least a block from where it started (a smaller shift may not change which blocks it
    covers, and the language model sees a token's place in its frame only by block). With ``frame_pairs``
    (:mod:`hybridkv.models.frame_pairs`) a frame's tokens also show the frame before, so the object is
    named from its second frame on, where its tokens show it move."""
    size = meta["object_px"]
    least = 1 if frame_pairs else BLOCK_PX
    boxes: list[Box] = []
    for obj in meta["objects"]:
        moved = (frame - obj["start"]) * max(abs(obj["vx"]), abs(obj["vy"]))
        if frame >= obj["start"] and moved >= least:
            boxes.append(centred_box(*frame_position(obj, frame), size, (direction_of(obj),)))
    return boxes


def item_boxes(item: TaskItem) -> list[list[Box] | None]:
    """Per image of ``item`` (video frames after its images, as the model sees them), its boxes or None."""
    meta = item.meta
    if item.task == "grid":
        per_image: list[list[Box] | None] = [grid_boxes(meta["grid"], meta["cell_blocks"])]
    elif item.task == "long_mixed":
        per_image = [grid_boxes(g, meta["cell_blocks"]) for g in meta["grids"]]
    elif item.task in ("attribute", "counting"):
        per_image = [scene_boxes(meta["objects"], meta["image_blocks"], meta["slot_blocks"])]
    elif item.task == "multi_image":
        per_image = [scene_boxes(im["objects"], meta["image_blocks"], meta["slot_blocks"]) for im in meta["images"]]
    elif item.task == "video":
        return [frame_boxes(meta, t) for t in range(meta["n_frames"])]
    elif item.task == "text_copy" and meta.get("distractor") is not None:
        d = meta["distractor"]
        per_image = [scene_boxes(d["objects"], d["image_blocks"], d["slot_blocks"])]
    else:
        per_image = [None] * len(item.images)
    return per_image + [None] * len(item.video or ())


def count_boxes(objects: Sequence[Mapping[str, Any]], image_blocks: int, slot_blocks: int) -> list[Box]:
    """Boxes of a rendered scene named by how many objects of their colour and shape the scene holds."""
    kinds = Counter((obj["colour"], obj["shape"]) for obj in objects)
    return [
        (*box[:4], (str(kinds[(obj["colour"], obj["shape"])]),), None)
        for obj, box in zip(objects, scene_boxes(objects, image_blocks, slot_blocks), strict=True)
    ]


def derived_boxes(
    item: TaskItem, motion_words: bool, count_words: bool, frame_pairs: bool = False
) -> list[list[Box] | None]:
    """Per image of ``item`` (as :func:`item_boxes`), boxes naming a derived word: :func:`motion_boxes` of
    video frames, :func:`count_boxes` of a counting scene, each when asked for; None elsewhere."""
    meta = item.meta
    if motion_words and item.task == "video":
        return [None] * len(item.images) + [motion_boxes(meta, t, frame_pairs) for t in range(len(item.video))]
    if count_words and item.task == "counting":
        return [count_boxes(meta["objects"], meta["image_blocks"], meta["slot_blocks"])]
    return [None] * (len(item.images) + len(item.video or ()))


def block_labels(
    boxes: Sequence[Box], blocks_h: int, blocks_w: int
) -> list[list[tuple[tuple[str, ...], tuple[int, int] | None]]]:
    """Row-major blocks, each with the words of the boxes covering at least a quarter of it (in box order)
    and the grid position of the last such box (a grid cell's blocks are covered by that cell alone)."""
    out: list[list[tuple[tuple[str, ...], tuple[int, int] | None]]] = [
        [((), None) for _ in range(blocks_w)] for _ in range(blocks_h)
    ]
    for x0, y0, x1, y1, words, position in boxes:
        for by in range(max(0, y0 // BLOCK_PX), min(blocks_h, -(-y1 // BLOCK_PX))):
            for bx in range(max(0, x0 // BLOCK_PX), min(blocks_w, -(-x1 // BLOCK_PX))):
                ox = min(x1, (bx + 1) * BLOCK_PX) - max(x0, bx * BLOCK_PX)
                oy = min(y1, (by + 1) * BLOCK_PX) - max(y0, by * BLOCK_PX)
                if ox > 0 and oy > 0 and ox * oy >= _MIN_COVER * BLOCK_PX**2:
                    merged = tuple(dict.fromkeys(out[by][bx][0] + words))[:MAX_WORDS]
                    out[by][bx] = (merged, position if position is not None else out[by][bx][1])
    return out


def visual_targets(
    item: TaskItem,
    image_grid_thw: torch.Tensor | None,
    tokenizer: PreTrainedTokenizerBase,
    *,
    motion_words: bool = False,
    count_words: bool = False,
    frame_pairs: bool = False,
) -> torch.Tensor | None:
    """``(visual tokens, WIDTH)`` targets per merged visual token of ``item``, in the order the vision tower
    emits them (image by image, blocks row-major): the word ids it shows, then its grid row, column and
    image number (columns ``ROW``, ``COL``, ``IMAGE``) and the derived word asked for (``DERIVED``,
    :func:`derived_boxes`), ``IGNORE`` where there is nothing to name. With ``frame_pairs`` (a model fed
    frame pairs) a moving object's blocks show its direction, which is then also a word they name
    (``SHOWN_DERIVED``, scored by the recognition loss).

    ``image_grid_thw`` is the processor's patch grid per image; a 28 px block is one merged token only
    when an image is not resized, which the suite's sizes guarantee (a resized image gets no targets).
    """
    if image_grid_thw is None:
        return None
    rows = []
    word_ids: dict[str, int] = {}  # a few dozen distinct words label thousands of blocks: tokenize each once

    def word_id(word: str) -> int:
        if word not in word_ids:
            word_ids[word] = _word_id(tokenizer, word)
        return word_ids[word]

    images = item_images(item)
    derived = derived_boxes(item, motion_words, count_words, frame_pairs)
    grids = zip(item_boxes(item), derived, images, image_grid_thw.tolist(), strict=True)
    for number, (boxes, derived_here, image, (t, h, w)) in enumerate(grids, start=1):
        blocks_h, blocks_w = h // 2, w // 2
        ids = np.full((t * blocks_h * blocks_w, WIDTH), IGNORE, dtype=np.int64)
        ids[:, IMAGE] = number if number <= MAX_IMAGE else IGNORE
        if boxes is not None and image.size == (blocks_w * BLOCK_PX, blocks_h * BLOCK_PX):  # not resized
            labels = (label for row in block_labels(boxes, blocks_h, blocks_w) for label in row)
            for i, (words, position) in enumerate(labels):
                for j, word in enumerate(words):
                    ids[i, j] = word_id(word)
                if position is not None and max(position) <= MAX_POSITION:
                    ids[i, ROW : COL + 1] = position
            if item.task == "video" and max(blocks_h, blocks_w) <= MAX_POSITION:  # where in the frame, for motion
                block_rows, block_cols = np.divmod(np.arange(blocks_h * blocks_w), blocks_w)
                ids[:, ROW], ids[:, COL] = np.tile(block_rows + 1, t), np.tile(block_cols + 1, t)
            if derived_here:
                labels = (label for row in block_labels(derived_here, blocks_h, blocks_w) for label in row)
                for i, (words, _) in enumerate(labels):
                    if words:
                        ids[i, DERIVED] = word_id(words[0])
                if frame_pairs and item.task == "video":  # the pair shows the move: the block names it
                    ids[:, SHOWN_DERIVED] = np.where(ids[:, 0] != IGNORE, ids[:, DERIVED], IGNORE)
        rows.append(ids)
    return torch.from_numpy(np.concatenate(rows))


def answer_places(item: TaskItem) -> list[tuple[int, int, int]] | None:
    """(image, row, column) of each word of ``item``'s answer, for answers read off a grid cell by cell (a
    grid question, a row read-out) or a prompt's list (:func:`text_place`), or (image, IGNORE, IGNORE) for
    an answer read off one image of several; None for answers that are not read off a known place."""
    meta = item.meta
    if "readout" in meta:  # a read-out item: its words are where the read-out looked, if anywhere
        readout = meta["readout"]
        if readout is None:
            return None
        if readout["row"] is None:
            return [(readout["image"], IGNORE, IGNORE)] * len(item.answer.split())
        if item.task == "text_copy":
            return [text_place(k) for k in range(1, len(meta["words"]) + 1)]
        grid = meta["grid"] if item.task == "grid" else meta["grids"][readout["image"] - 1]
        columns = len(grid["cells"][0])
        return [(readout["image"], readout["row"], c) for c in range(1, columns + 1)]
    if item.task == "grid":
        return [(1, meta["row"], meta["col"])]
    if item.task == "long_mixed":
        return [(meta["image"], meta["row"], meta["col"])]
    if item.task == "multi_image":
        return [(meta["image"], IGNORE, IGNORE)]
    if item.task == "text_copy":
        return [text_place(meta["item"])]
    return None


def answer_source_words(item: TaskItem, motion_words: bool = False) -> tuple[str, ...] | None:
    """The words the source of ``item``'s (one-word) answer shows, when that is not the answer itself: the
    frame in which a video's object first appears, or the way it moves, is found by the object, not by its
    number or direction; a count by the objects counted. None where the answer is read as it is shown (with
    ``motion_words``, a motion: the moving object's blocks show its direction, :func:`motion_boxes`)."""
    meta = item.meta
    if "readout" in meta or (motion_words and is_motion(item)):
        return None
    if item.task == "video":
        target = meta["objects"][0]
        return (target["colour"], target["shape"])
    if item.task == "counting":
        return (meta["colour"], meta["shape"])
    return None


def asked_words(item: TaskItem) -> tuple[str, ...] | None:
    """The words by which ``item``'s question names the object its answer is about (the shape whose colour
    is asked, the colour and shape to count or to follow through a video); None where it names none.

    The lookup needs them gathered at the answer position in the code the object's visual tokens carry,
    as a grid lookup needs the asked cell (``guidance.word_code_losses``)."""
    meta = item.meta
    if "readout" in meta:
        return None
    if item.task == "attribute":
        target = meta["objects"][meta["target"]]
        return (target["shape"],) if meta["ask"] == "colour" else (target["colour"],)
    if item.task == "multi_image":
        return (meta["shape"],)
    if item.task == "counting":
        return (meta["colour"], meta["shape"])
    if item.task == "video":
        target = meta["objects"][0]
        return (target["colour"], target["shape"])
    return None


def sink_share(item: TaskItem) -> float | None:
    """For answers read off all their sources at once, the share of the lookup's attention meant for the
    prompt's first token, the rest spread evenly over the sources; None for answers whose lookup only has
    to find its source.

    A count asks ``1 / (n + 1)`` for ``n`` counted objects: a mean over the counted tokens is the same for
    any number of them; with a fixed token beside them, its share in the mean tells how many there are.
    A video asks 0: its object in every frame that shows it, evenly, so that the frames' numbers (the
    image code) all reach the answer, the first of them being when it appeared (a lookup of the first
    frame alone would need each token to know it is new, which no single frame shows)."""
    if "readout" in item.meta:
        return None
    if item.task == "counting":
        return 1.0 / (int(item.answer) + 1)
    if item.task == "video" and item.meta["question"] == "appear":
        return 0.0
    return None


def is_motion(item: TaskItem) -> bool:
    """Whether ``item`` asks which way a video's object moves."""
    return item.task == "video" and item.meta["question"] == "motion" and "readout" not in item.meta


def reads_ends(item: TaskItem, motion_words: bool = False) -> bool:
    """Whether ``item``'s answer compares where its object is in the first and in the last frame that show
    it (which way it moves): one lookup for each end, by separate heads (``guidance.split_ends``). Not with
    ``motion_words``, where the direction is read off the object's later blocks as one word."""
    return is_motion(item) and not motion_words


def text_place(index: int) -> tuple[int, int, int]:
    """The place of a prompt list's ``index``-th word (1-based): image 0 (the text), row 1, column ``index``,
    so that a list is read in the code of a one-row grid."""
    return (0, 1, index)


def prompt_places(item: TaskItem, prompt_ids: Sequence[int], tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """``(len(prompt_ids), 3)`` places of the prompt's tokens: each listed word of a ``text_copy`` item at
    :func:`text_place` of its number, ``IGNORE`` everywhere else (visual tokens have theirs in
    :func:`visual_targets`)."""
    out = torch.full((len(prompt_ids), 3), IGNORE, dtype=torch.long)
    if item.task != "text_copy":
        return out
    ids = list(prompt_ids)
    for k, word in enumerate(item.meta["words"], start=1):
        token = _word_id(tokenizer, word)
        if token in ids:  # listed words are distinct, each one token
            out[ids.index(token)] = torch.tensor(text_place(k))
    return out


def _word_id(tokenizer: PreTrainedTokenizerBase, word: str) -> int:
    """The word's token as an answer is tokenized (no leading space); its first token if it has several."""
    return int(tokenizer(word, add_special_tokens=False)["input_ids"][0])
