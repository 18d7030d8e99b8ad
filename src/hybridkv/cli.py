"""`hybridkv` command line: generate with a compressed cache, and the demo.

Every user error is printed as one line on stderr (no traceback) and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .defaults import DEFAULT_MODEL, EMBEDDED_MODEL, MODEL_HELP
from .errors import BudgetError, HybridKVError


def parse_budget(text: str) -> float | int:
    """``0.1`` or ``10%`` is a ratio of the prompt; a plain integer such as ``256`` is tokens per KV head."""
    from .config import validate_budget

    raw = text.strip()
    try:
        if raw.endswith("%"):
            value: float | int = float(raw[:-1]) / 100.0
        elif any(c in raw for c in ".eE"):
            value = float(raw)
        else:
            value = int(raw)
    except ValueError:
        raise BudgetError(
            f"--budget {text!r} is not a number; use a ratio like 0.1 or 10%, or tokens like 256"
        ) from None
    return validate_budget(value)


def _add_method_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="hybridkv", help="compression method (see `hybridkv methods`)")
    p.add_argument("--budget", default="0.1", help="ratio of the prompt (0.1, 10%%) or tokens per KV head (256)")
    p.add_argument("--theta", type=float, default=None, help="static-head threshold on the text-centric score")
    p.add_argument(
        "--score", default=None, help="text-centric score: text_topk (default), topk_mass, entropy, text_mass"
    )
    p.add_argument("--head-types", choices=["online", "static", "dynamic"], default=None)
    p.add_argument(
        "--classify",
        choices=["online", "profile", "blend"],
        default=None,
        help="head types from this input (online), from --profile, or the profile as a prior (blend)",
    )
    p.add_argument("--rule", choices=["threshold", "quantile"], default=None, help="online rule")
    p.add_argument("--dynamic-share", type=float, default=None, help="quantile rule: share of dynamic heads")
    p.add_argument(
        "--profile",
        default=None,
        help="a head profile written by `hybridkv profile` ('embedded': the embedded model's own)",
    )
    p.add_argument("--margin", type=float, default=None, help="blend: margin needed to overturn the profile")
    p.add_argument(
        "--allocator",
        default=None,
        choices=["hybridkv", "type-level", "uniform", "pyramid", "adaptive", "fastv", "profile", "modality"],
        help="budget split: type then head (hybridkv), evenly, by depth (pyramid), by attention (adaptive), "
        "full early layers (fastv), by profiled visual attention (profile), by modality (modality)",
    )
    p.add_argument("--fastv-layer", type=int, default=None, help="fastv: K, the first layer whose cache is pruned")
    p.add_argument(
        "--layer-level",
        choices=["none", "profile", "adaptive"],
        default=None,
        help="a model -> layer split above the allocator, from --profile (adaptive: per input, a ceiling)",
    )
    p.add_argument("--r", type=float, default=None, help="hybridkv allocator: weight of a dynamic head vs a static one")
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="observation window: scores heads and tokens; kept (less on short prompts)",
    )
    p.add_argument("--sinks", type=int, default=None)
    p.add_argument(
        "--no-fit-short-prompts",
        dest="fit_short_prompts",
        action="store_const",
        const=False,
        default=None,
        help="keep --sinks, --window and --chunk-size on short prompts too (by default they shrink to fit the budget)",
    )
    p.add_argument(
        "--no-chunkless-core",
        dest="chunkless_core",
        action="store_const",
        const=False,
        default=None,
        help="a dynamic head whose share cannot buy one chunk attends its sinks and window only "
        "(by default it keeps its best tokens resident)",
    )
    p.add_argument("--cold-tier", choices=["host", "disk"], default=None)
    p.add_argument("--cold-dir", default=None)


def _method_from_args(args: argparse.Namespace):
    from .methods import get_method

    options: dict[str, Any] = {"budget": parse_budget(args.budget)}
    names = (
        "theta",
        "score",
        "head_types",
        "classify",
        "rule",
        "dynamic_share",
        "margin",
        "allocator",
        "r",
        "chunk_size",
        "window",
        "sinks",
        "fit_short_prompts",
        "chunkless_core",
        "cold_tier",
        "cold_dir",
        "fastv_layer",
        "layer_level",
    )
    for name in names:
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.profile is not None:
        from .profile import load_profile

        options["profile"] = load_profile(args.profile)
    return get_method(args.method, **options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybridkv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="answer one prompt (with images) using a compressed KV cache")
    g.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    g.add_argument("--image", action="append", default=[], help="image file (repeat for several images)")
    g.add_argument("--prompt", required=True)
    g.add_argument("--max-new-tokens", type=int, default=32)
    g.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    _add_method_options(g)

    d = sub.add_parser("demo", help="full cache vs HybridKV side by side on held-out items of the embedded model")
    d.add_argument("--model", default=EMBEDDED_MODEL, help="a model that knows the suite (default: embedded)")
    d.add_argument("--budget", default="0.1")
    d.add_argument("--max-new-tokens", type=int, default=8)
    d.add_argument("--fast", action="store_true", help="a shorter long prompt (for CI)")

    sub.add_parser("methods", help="list the registered compression methods").set_defaults(handler=cmd_methods)
    g.set_defaults(handler=cmd_generate)
    d.set_defaults(handler=cmd_demo)
    from .commands import eval_cmd, profile_cmd

    profile_cmd.add_parser(sub)
    eval_cmd.add_parser(sub)
    eval_cmd.add_merge_parser(sub)
    return parser


def cmd_generate(args: argparse.Namespace) -> int:
    method = _method_from_args(args)  # validate options before loading anything
    if args.max_new_tokens < 1:
        raise HybridKVError("--max-new-tokens must be >= 1")
    if not args.prompt.strip():
        raise HybridKVError("--prompt is empty; pass the question or instruction to answer")
    from .models import load_image, load_model

    images = [load_image(path) for path in args.image]  # fail on a bad image before loading the model
    loaded = load_model(args.model)
    from .generation import generation_record

    record = generation_record(loaded, args.prompt, images, method, max_new_tokens=args.max_new_tokens)
    if args.json:
        print(json.dumps(record))
    else:
        from .report import print_generation

        print_generation(record)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(
        model=args.model, budget=parse_budget(args.budget), max_new_tokens=args.max_new_tokens, fast=args.fast
    )


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS

    for name, cls in METHODS.items():
        print(f"{name:18s} {(cls.__doc__ or '').strip().splitlines()[0]}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except HybridKVError as exc:
        print(f"hybridkv: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
