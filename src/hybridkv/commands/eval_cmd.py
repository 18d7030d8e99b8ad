"""`hybridkv eval`: accuracy of compression methods against KV budget on the synthetic task suite.

    hybridkv eval --model M --tasks grid,counting --methods full,hybridkv --budgets 0.05,0.1,0.2,0.5 \\
                  --limit 20 --out results/

Writes ``results.json`` (every item's prediction, the summary and the run metadata),
``accuracy_vs_budget.png`` and ``accuracy_vs_kv_bytes.png`` under ``--out``, and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..defaults import MODEL_HELP
from ..errors import ConfigError
from ..eval.config import DEFAULT_BUDGETS, DEFAULT_LIMIT, DEFAULT_METHODS, DEFAULT_MODEL, DEFAULT_SPLIT

ALL_TASKS = "all"
TABLE_FILE = "table.md"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``eval`` on the CLI's sub-parsers."""
    p = subparsers.add_parser(
        "eval",
        help="accuracy vs KV budget of compression methods on the synthetic task suite",
        description="Answer the same suite items with every method at every budget (the uncompressed 'full' "
        "cache once, as the reference), score them by exact match, and write results.json, a table and "
        "two plots (accuracy vs budget, accuracy vs measured hot KV bytes).",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    p.add_argument("--tasks", default=ALL_TASKS, help="comma-separated suite tasks, or 'all' (default)")
    p.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated methods (see `hybridkv methods`); 'full' runs once, as the reference",
    )
    p.add_argument(
        "--budgets",
        default=",".join(map(str, DEFAULT_BUDGETS)),
        help="comma-separated budgets: ratios (0.1, 10%%) or tokens per KV head (256), not both",
    )
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"items per task (default {DEFAULT_LIMIT})")
    p.add_argument("--split", default=DEFAULT_SPLIT, help=f"suite split: train, validation or test ({DEFAULT_SPLIT})")
    p.add_argument("--seed", type=int, default=0, help="suite seed: the same seed gives the same items")
    p.add_argument(
        "--max-new-tokens", type=int, default=None, help="greedy tokens per answer (default: each task's, 8)"
    )
    p.add_argument("--out", default="results", help="output directory (default ./results)")
    p.add_argument(
        "--setting",
        default="aware",
        help="'aware' (default): the question is in the prompt when the cache is compressed; 'agnostic': the "
        "images and context are compressed first and the question is asked afterwards",
    )
    p.add_argument(
        "--profile",
        default=None,
        help="head profile file from `hybridkv profile`, or embedded (the embedded model's own); "
        "needed by sparsemm and hybridkv-profile",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a HybridKVConfig field given to every compressed method, e.g. --option r=2 --option window=32 "
        "(repeatable; recorded in results.json; an explicit option overrides a method's own default)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)
    return p


def _split_list(text: str, what: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise ConfigError(f"--{what} is empty; pass a comma-separated list")
    return values


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (2, 0.5, true, null), else as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise ConfigError(f"--option {text!r} is not KEY=VALUE; e.g. --option r=2")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw.strip()
    return key, value


def config_from_args(args: argparse.Namespace) -> Any:
    """The validated :class:`hybridkv.eval.EvalConfig` of the parsed options (no model work)."""
    from ..cli import parse_budget
    from ..eval.config import EvalConfig

    tasks = () if args.tasks.strip() == ALL_TASKS else _split_list(args.tasks, "tasks")
    return EvalConfig(
        model=args.model,
        tasks=tasks,
        methods=_split_list(args.methods, "methods"),
        budgets=tuple(parse_budget(b) for b in _split_list(args.budgets, "budgets")),
        limit=args.limit,
        split=args.split,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        setting=args.setting,
        profile=args.profile,
        method_options=dict(parse_option(o) for o in getattr(args, "option", [])),
    )


def _check_out(out: str) -> Path:
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a directory for results.json and the plots")
    return path


def run(args: argparse.Namespace) -> int:
    """Evaluate, write results.json, the table and the plots, print the table."""
    config = config_from_args(args)
    out = _check_out(args.out)

    from ..eval.runner import evaluate

    write_outputs(evaluate(config, progress=not args.no_progress), out)
    return 0


def write_outputs(results: Any, out: Path) -> None:
    """results.json, table.md and the two plots under ``out``; the table printed, and what was written."""
    from rich.console import Console

    from ..eval.plots import write_plots
    from ..eval.report import print_summary, summary_markdown
    from ..eval.results import write_results
    from ..io import atomic_write

    config = results.config
    results_path = write_results(results, out)
    subtitle = f"{results.metadata['model']['name']}, {results.metadata['items']} {config.split} items"
    plots = write_plots(results.summary, out, title=subtitle)
    print_summary(results)
    table_path = out / TABLE_FILE
    markdown = summary_markdown(results.summary, config.tasks).encode()
    atomic_write(table_path, lambda handle: handle.write(markdown))
    wrote = ", ".join(str(p) for p in (results_path, table_path, *plots.values()))
    Console().print(f"{len(results.records)} answers in {results.metadata['elapsed_s']:.1f} s; wrote {wrote}")


def add_merge_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``merge`` on the CLI's sub-parsers."""
    p = subparsers.add_parser(
        "merge",
        help="merge the results of evaluations that split the work (by task, method or budget) into one",
        description="Read several results.json (files or --out directories of `hybridkv eval`) that agree on "
        "model, split, seed, items per task, setting and options, and write their union as one run: "
        "results.json, table and plots. Run shards in parallel, e.g. one process per task, then merge.",
    )
    p.add_argument("results", nargs="+", help="results.json files or the directories holding them")
    p.add_argument("--out", required=True, help="output directory for the merged run")
    p.set_defaults(handler=run_merge)
    return p


def run_merge(args: argparse.Namespace) -> int:
    from ..eval.merge import merge_results
    from ..eval.results import load_results

    write_outputs(merge_results([load_results(p) for p in args.results]), _check_out(args.out))
    return 0
