#!/usr/bin/env python
"""Train hybridkv's embedded vision-language model on CPU, on the package's own synthetic task suite.

The model is a small Qwen2.5-VL (see ``hybridkv.embedded``). Training is deterministic for a given
seed and thread count, draws every batch from the train split on the fly (no dataset on disk), and
is resumable: a checkpoint (safetensors + JSON, no pickle) is written to ``OUT/checkpoint`` every
``--checkpoint-every`` steps and when ``--max-minutes`` runs out. At the end (or when the time is up)
the script evaluates every task on the validation split and writes a checkpoint directory that
``hybridkv.models.load_model(OUT)`` loads: config, safetensors, tokenizer, preprocessor config, chat
template, plus ``training.json`` (steps, time, per-task validation accuracy, seed, versions) and the
step log ``train_log.jsonl``.

What it trains on: every task of ``hybridkv.data``, train split, generated per step from a seed
derived from (--seed, step), mixed by the weights in ``hybridkv.embedded.mixture`` (long_mixed, at
2,000-3,000 visual tokens an item, is mostly practised through cheaper variants with fewer or smaller
grids). Each item is followed by up to --follow-ups more questions about the same images, as later
chat turns (train-split questions only; see ``hybridkv.embedded.questions``). The loss is on the answer
tokens and the end-of-turn tokens only.

Dense signals (all off by default; docs/embedded-model.md has what each did): --readouts N adds read-out
turns (a whole list, grid row or scene spelled out) after each item's questions; --readout-items S asks a
share S of items one read-out instead of their own question; --recognition-loss W trains each visual
token to name the words drawn on it, --position-loss W each grid token to carry its cell's row and
column, --lookup-loss W puts the last decoder layer's attention, at each answer word, on the prompt
tokens that show it, and --query-position-loss W asks the input of that attention, where a grid answer
is predicted, for the cell's row and column; --image-code-loss W asks it for each visual token's image
number and the asked image's; --word-code-loss W for the words each visual token shows and, at the
answer, the words naming the asked object; --ends-position-loss W asks, for a motion, each half of the
last layer's heads to read where its end of the path is; --motion-words instead reads a motion off the
moving object's later blocks, which the lower layers are asked to label with its direction (in the word
code), and --motion-lookup-loss W asks a lower layer to look, from each such block, at the same object
in earlier frames (--coordinate-loss W writes each block's row and column as coordinates the
layers can subtract); --count-words asks them to label each object of a counting scene with how many of its kind the
scene holds. --init DIR starts from a trained run's weights (staged
training: text first, then the mixture); the loss weights may also change at a --resume (the change
is logged and recorded in training.json).

Video: the suite's video items are fed as a sequence of images (one ``<|image_pad|>`` block per frame,
in order), not through Qwen2.5-VL's video path. The video path needs a video processor, which needs
torchvision (not importable next to the pinned CPU torch), and ``LoadedModel.build_inputs``, which
every evaluation uses, takes images only. The cost is 2x the video path's visual tokens (frames are
not merged in pairs); ``hybridkv.embedded.visual_token_count`` gives the count the model sees.

Examples::

    # the full run (default 6000 steps at batch 16: 0.5 s/step early, ~1.1 s/step once long_mixed
    # is in the mix, on 2 idle cores); stop and resume at will, the result is the same
    python scripts/train_tiny_vlm.py --out runs/embedded --threads 2 --eval-every 500 --max-minutes 120
    python scripts/train_tiny_vlm.py --out runs/embedded --threads 2 --eval-every 500 --resume

    # on a GPU: examples prepared ahead by worker processes, one micro-batch per step
    python scripts/train_tiny_vlm.py --out runs/gpu --device cuda --data-workers 4 --batch-size 32 --max-tokens 16384

    # a short probe of the same schedule's first minutes
    python scripts/train_tiny_vlm.py --out /tmp/probe --max-minutes 15 --threads 1

To ship a trained model, copy OUT without its ``checkpoint/`` folder to ``src/hybridkv/assets/embedded``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hybridkv.data import TASKS  # noqa: E402
from hybridkv.embedded.mixture import MIXTURES  # noqa: E402
from hybridkv.embedded.training import (  # noqa: E402
    CHECKPOINT_DIR,
    RunOptions,
    TrainResult,
    TrainSettings,
    settings_for_resume,
    train,
)
from hybridkv.errors import HybridKVError  # noqa: E402

DEFAULTS = TrainSettings()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="run directory: checkpoint, log, final model")
    p.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoint (its settings kept, unless changed below)"
    )
    run = p.add_argument_group(
        "settings (fixed for a run; on --resume, omitted ones come from the checkpoint, and only --steps and the "
        "loss weights may change)"
    )
    run.add_argument("--steps", type=int, help=f"optimizer steps in all (default {DEFAULTS.steps})")
    run.add_argument("--batch-size", type=int, help=f"items per step (default {DEFAULTS.batch_size})")
    run.add_argument("--lr", type=float, help=f"peak AdamW learning rate (default {DEFAULTS.lr})")
    run.add_argument(
        "--warmup-steps", type=int, help=f"linear warmup before cosine decay (default {DEFAULTS.warmup_steps})"
    )
    run.add_argument(
        "--weight-decay", type=float, help=f"AdamW weight decay on matrices (default {DEFAULTS.weight_decay})"
    )
    run.add_argument("--seed", type=int, help=f"initial weights and data order (default {DEFAULTS.seed})")
    run.add_argument(
        "--max-tokens", type=int, help=f"padded tokens per micro-batch; memory vs speed (default {DEFAULTS.max_tokens})"
    )
    run.add_argument(
        "--mixture",
        choices=tuple(MIXTURES),
        help="named task mixture (default 'default'; 'weak-tasks' is a second stage, with --init, weighted towards "
        "the tasks a first stage left weakest)",
    )
    run.add_argument(
        "--tasks", help=f"comma-separated subset of the suite to train on (default all: {','.join(TASKS)})"
    )
    run.add_argument(
        "--follow-ups",
        type=int,
        help=f"extra questions per item about the same images, as later turns (default {DEFAULTS.follow_ups})",
    )
    run.add_argument(
        "--readouts",
        type=int,
        help=f"read-out turns per item: a whole list, grid row or scene spelled out (default {DEFAULTS.readouts})",
    )
    run.add_argument(
        "--readout-items",
        type=float,
        help="share of items asked a read-out instead of their own question, as items of their own "
        f"(default {DEFAULTS.readout_items})",
    )
    run.add_argument(
        "--recognition-loss",
        type=float,
        help="weight of the loss that trains each visual token to name what it shows "
        f"(default {DEFAULTS.recognition_loss})",
    )
    run.add_argument(
        "--init",
        help="start from this trained model directory (a run's output) with a fresh optimizer and schedule",
    )
    run.add_argument(
        "--position-loss",
        type=float,
        help="weight of the loss that trains each grid token to carry its cell's row and column "
        f"(default {DEFAULTS.position_loss})",
    )
    run.add_argument(
        "--lookup-loss",
        type=float,
        help="weight of the loss that puts the last layer's attention, at each answer word, on the tokens "
        f"showing it (default {DEFAULTS.lookup_loss})",
    )
    run.add_argument(
        "--query-position-loss",
        type=float,
        help="weight of the loss asking the last layer's input, where a grid answer word is predicted, to carry "
        f"the cell's row and column (default {DEFAULTS.query_position_loss})",
    )
    run.add_argument(
        "--image-code-loss",
        type=float,
        help="weight of the loss asking the last layer's input to carry each visual token's image number and "
        f"the asked image's number at the answer (default {DEFAULTS.image_code_loss})",
    )
    run.add_argument(
        "--word-code-loss",
        type=float,
        help="weight of the loss asking the last layer's input to carry the words each visual token shows and, at "
        f"the answer, the words naming the asked object (default {DEFAULTS.word_code_loss})",
    )
    run.add_argument(
        "--ends-position-loss",
        type=float,
        help="weight of the loss asking, for a motion, each half of the last layer's heads to read where its end "
        f"of the object's path is (default {DEFAULTS.ends_position_loss})",
    )
    run.add_argument(
        "--coordinate-loss",
        type=float,
        help="weight of the loss asking each visual token with a known row and column to carry them as "
        f"coordinates along fixed directions (default {DEFAULTS.coordinate_loss})",
    )
    run.add_argument(
        "--motion-lookup-loss",
        type=float,
        help="weight of the loss asking a lower layer, at each block naming a direction, to look at the same "
        f"object in earlier frames (default {DEFAULTS.motion_lookup_loss})",
    )
    run.add_argument(
        "--motion-words",
        action="store_true",
        default=None,
        help="moving objects' blocks name their direction in the word code, and a motion's answer is looked up "
        "there rather than at both ends of the path",
    )
    run.add_argument(
        "--frame-pairs",
        action="store_true",
        default=None,
        help="show each video frame beside the frame before it in the vision tower's temporal patch (saved in the "
        "model's config)",
    )
    run.add_argument(
        "--count-words",
        action="store_true",
        default=None,
        help="each object of a counting scene names, in the word code, how many objects of its colour and shape "
        "the scene holds",
    )
    run.add_argument(
        "--visual-mean-penalty",
        type=float,
        help=f"weight of the penalty on the mean visual token (default {DEFAULTS.visual_mean_penalty})",
    )
    obs = p.add_argument_group("execution (free to change between resumes)")
    obs.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    obs.add_argument("--device", default="cpu", help="torch device to train on (default cpu; e.g. cuda)")
    obs.add_argument(
        "--data-workers", type=int, default=0, help="processes preparing upcoming steps' data (default 0; use on GPU)"
    )
    obs.add_argument("--eval-every", type=int, default=250, help="steps between validation checks; 0 = only at the end")
    obs.add_argument("--eval-items", type=int, default=16, help="validation items per task in periodic checks")
    obs.add_argument("--final-eval-items", type=int, default=64, help="validation items per task at the end")
    obs.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    obs.add_argument("--max-minutes", type=float, help="stop, checkpoint and export after this much wall-clock time")
    obs.add_argument("--stop-after", type=int, help="stop, checkpoint and export after this step (resume later)")
    obs.add_argument("--no-progress", action="store_true", help="no progress bar (the JSONL log is still written)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> TrainResult:
    args = parse_args(argv)
    given = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup_steps": args.warmup_steps,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "max_tokens": args.max_tokens,
        "follow_ups": args.follow_ups,
        "readouts": args.readouts,
        "readout_items": args.readout_items,
        "visual_mean_penalty": args.visual_mean_penalty,
        "recognition_loss": args.recognition_loss,
        "position_loss": args.position_loss,
        "lookup_loss": args.lookup_loss,
        "query_position_loss": args.query_position_loss,
        "image_code_loss": args.image_code_loss,
        "word_code_loss": args.word_code_loss,
        "ends_position_loss": args.ends_position_loss,
        "coordinate_loss": args.coordinate_loss,
        "motion_lookup_loss": args.motion_lookup_loss,
        "motion_words": args.motion_words,
        "count_words": args.count_words,
        "frame_pairs": args.frame_pairs,
        "init": args.init,
        "mixture": args.mixture,
        "tasks": None if args.tasks is None else tuple(t.strip() for t in args.tasks.split(",") if t.strip()),
    }
    if args.resume:
        settings = settings_for_resume(args.out, given)
    else:
        settings = TrainSettings(**{k: v for k, v in given.items() if v is not None})
    options = RunOptions(
        out_dir=args.out,
        resume=args.resume,
        threads=args.threads,
        eval_every=args.eval_every,
        eval_items=args.eval_items,
        final_eval_items=args.final_eval_items,
        checkpoint_every=args.checkpoint_every,
        max_minutes=args.max_minutes,
        stop_after=args.stop_after,
        progress=not args.no_progress,
        device=args.device,
        data_workers=args.data_workers,
    )
    result = train(settings, options)
    state = "finished" if result.completed else f"stopped at step {result.steps_done} (resume with --resume)"
    print(f"{state}; model in {args.out}, checkpoint in {args.out / CHECKPOINT_DIR}")
    return result


if __name__ == "__main__":
    try:
        main()
    except HybridKVError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
