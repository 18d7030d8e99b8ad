#!/usr/bin/env python
"""Ship a trained embedded model: copy it into the package, evaluate it on the test split, write its card.

Copies the exported run (config, safetensors, tokenizer, processor, chat template, training.json;
not the resumable checkpoint nor the step log) into ``src/hybridkv/assets/embedded``, evaluates the
copy there with ``hybridkv.eval`` (full cache, StreamingLLM, SnapKV and HybridKV at a 10% budget on
every task's test items), and writes the model card (``README.md``) from those measurements. The
evaluation's ``results.json`` and plots go to ``--results``.

The card's evaluation is question-agnostic (images and context compressed, then the question asked):
the suite's answers are one word, the first generated token, which every method computes from the
full prefill when the question is in the compressed prompt, so only the agnostic setting can show
what eviction loses (docs/results.md, "Embedded suite").

Example::

    python scripts/ship_embedded.py --run runs/embedded --limit 50 --results docs/results/embedded
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hybridkv.defaults import EMBEDDED_DIR  # noqa: E402
from hybridkv.embedded.card import CARD_BUDGET, architecture_of, model_card, quality_checks  # noqa: E402
from hybridkv.embedded.training import CHECKPOINT_DIR, SUMMARY_FILE, init_training  # noqa: E402
from hybridkv.errors import HybridKVError  # noqa: E402
from hybridkv.eval import EvalConfig, evaluate  # noqa: E402
from hybridkv.eval.plots import write_plots  # noqa: E402
from hybridkv.eval.results import load_results, write_results  # noqa: E402

SKIP = {CHECKPOINT_DIR, "train_log.jsonl", "README.md"}
CARD_METHODS = ("full", "streaming", "snapkv", "hybridkv")
CARD_SETTING = "agnostic"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="the --out directory of scripts/train_tiny_vlm.py")
    p.add_argument("--dest", type=Path, default=EMBEDDED_DIR, help="where the package loads 'embedded' from")
    p.add_argument("--limit", type=int, default=50, help="test items per task for the card (default 50)")
    p.add_argument("--results", type=Path, default=Path("docs/results/embedded"), help="results.json and plots")
    p.add_argument(
        "--card-only", action="store_true", help="rewrite the card of the copy in --dest from --results' results.json"
    )
    args = p.parse_args()

    if not (args.run / "config.json").is_file() or not (args.run / SUMMARY_FILE).is_file():
        raise HybridKVError(f"{args.run} holds no finished export; run scripts/train_tiny_vlm.py --out {args.run}")
    if args.card_only:
        results = load_results(args.results / "results.json")
    else:
        if args.dest.exists():
            shutil.rmtree(args.dest)
        args.dest.mkdir(parents=True)
        for entry in sorted(args.run.iterdir()):
            if entry.name not in SKIP and entry.is_file():
                shutil.copy2(entry, args.dest / entry.name)
        # the package's own copy is evaluated by its name, so that no machine path lands in results.json
        model = "embedded" if args.dest.resolve() == EMBEDDED_DIR.resolve() else str(args.dest)
        config = EvalConfig(
            model=model, methods=CARD_METHODS, budgets=(CARD_BUDGET,), limit=args.limit, setting=CARD_SETTING
        )
        results = evaluate(config)
        args.results.mkdir(parents=True, exist_ok=True)
        write_results(results, args.results)
        write_plots(results.summary, args.results, title="embedded model, test split")

    from hybridkv.models import load_model

    model = load_model(args.dest).model
    weights = sum(f.stat().st_size for f in args.dest.glob("*.safetensors"))
    command = (
        f"hybridkv eval --model embedded --methods {','.join(CARD_METHODS)} --budgets {CARD_BUDGET:g} "
        f"--limit {args.limit} --setting {CARD_SETTING} --out {args.results}"
    )
    training = json.loads((args.run / SUMMARY_FILE).read_text())
    earlier = init_training(training)  # a run exported before training.json kept its --init run's
    if earlier is not None and "init_training" not in training:
        training["init_training"] = earlier
        (args.dest / SUMMARY_FILE).write_text(json.dumps(training, indent=2, sort_keys=True) + "\n")
    card = model_card(
        training,
        results.summary,
        items_per_task=args.limit,
        parameters=sum(t.numel() for t in model.parameters()),
        weights_bytes=weights,
        eval_command=command,
        architecture=architecture_of(model.config),
    )
    (args.dest / "README.md").write_text(card)
    print(card)
    print(json.dumps(quality_checks(results.summary), indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HybridKVError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
