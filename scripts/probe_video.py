#!/usr/bin/env python
"""Where a trained embedded model stands on video: accuracy per question, and whether its vision tower
shows which way objects move.

Prints, for the first ``--items`` clips of a split (seed 0, as ``hybridkv eval`` draws them), how many
"first appears" and "which way" questions the model answers right with the full cache, and, for the
first ``--readout-items`` "which way" clips, how often the vision tower's output at a moving object's
blocks (those naming a direction, ``visual_targets.motion_boxes``) is closest, through the output head,
to the right one of the four direction words (chance 25%).

Example::

    python scripts/probe_video.py --model runs/fp2-probe --items 100 --readout-items 20
"""

from __future__ import annotations

import argparse
import os
from collections import Counter

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from hybridkv.data import generate_items, score  # noqa: E402
from hybridkv.data.tasks.video import DIRECTIONS  # noqa: E402
from hybridkv.embedded.evaluation import answer_items  # noqa: E402
from hybridkv.embedded.examples import encode  # noqa: E402
from hybridkv.embedded.visual_targets import DERIVED, IGNORE  # noqa: E402
from hybridkv.models import LoadedModel, load_model  # noqa: E402
from hybridkv.models.frame_pairs import pairs_frames  # noqa: E402


def per_question(loaded: LoadedModel, split: str, n: int) -> dict[str, tuple[int, int]]:
    """(right, asked) per video question over the split's first ``n`` clips."""
    items = generate_items("video", split, n)
    right, asked = Counter(), Counter()
    for prediction, item in zip(answer_items(loaded, items), items, strict=True):
        asked[item.meta["question"]] += 1
        right[item.meta["question"]] += score(prediction, item.answer)
    return {q: (right[q], asked[q]) for q in asked}


def direction_readout(loaded: LoadedModel, split: str, n: int) -> tuple[int, int]:
    """(right, blocks): moving blocks whose vision-tower output is nearest the right direction word."""
    words = [loaded.tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in DIRECTIONS]
    right = total = 0
    with torch.no_grad():
        for item in generate_items("video", split, n, questions=("motion",)):
            example = encode(loaded, item, motion_words=True)
            tokens = loaded.model.model.visual(example.pixel_values, grid_thw=example.image_grid_thw).pooler_output
            moving = example.visual_targets[:, DERIVED] != IGNORE
            nearest = loaded.model.lm_head(tokens[moving])[:, words].argmax(dim=-1)
            right += int((torch.tensor(words)[nearest] == example.visual_targets[moving, DERIVED]).sum())
            total += int(moving.sum())
    return right, total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a trained model directory (a run's output or the package's)")
    p.add_argument("--split", default="validation", help="split to draw clips from (default validation)")
    p.add_argument("--items", type=int, default=100, help="clips for the per-question accuracy (default 100)")
    p.add_argument("--readout-items", type=int, default=20, help="'which way' clips for the read-out (default 20)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model)
    print(f"{args.model}: frame pairs {'on' if pairs_frames(loaded.model.config) else 'off'}")
    for question, (right, asked) in sorted(per_question(loaded, args.split, args.items).items()):
        print(f"  {question}: {right} of {asked}")
    right, total = direction_readout(loaded, args.split, args.readout_items)
    print(f"  direction read off the vision tower at moving blocks: {right} of {total} ({right / max(total, 1):.0%})")


if __name__ == "__main__":
    main()
