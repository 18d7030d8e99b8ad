"""`hybridkv profile`: measure how stable each KV head's type is over a calibration set, and show a profile.

    hybridkv profile --model M [--calib suite|suite:TASK,...|FILE.jsonl] [--samples N] --out profile.json
                     [--plot heads.png]
    hybridkv profile show profile.json [--heads]

``profile`` takes its options directly and has one optional sub-action, ``show``, so both lines of the
usage above parse as typed.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from ..config import config_default
from ..defaults import DEFAULT_MODEL, MODEL_HELP
from ..errors import ConfigError


def add_parser(subparsers: Any) -> None:
    """Register ``profile`` (and its ``show`` action) on the CLI's sub-parsers."""
    p = subparsers.add_parser(
        "profile",
        help="measure per-head score, type stability and visual focus over a calibration set",
        description="Measure, per layer and KV head, the text-centric score's mean and variance, how often the "
        "online type flips, and how stable the most-attended visual tokens are over the first decode steps. "
        "`hybridkv profile show FILE.json` prints a saved profile.",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    p.add_argument(
        "--calib",
        default="suite",
        help="calibration inputs: 'suite' (embedded tasks), 'suite:grid,counting' (any evaluation task, "
        "e.g. 'suite:needle_2k' for a text model), or a JSONL file of "
        '{"prompt": ..., "images": [paths]} lines',
    )
    p.add_argument("--samples", type=int, default=16, help="number of calibration inputs (default 16)")
    p.add_argument("--split", default="validation", choices=["train", "validation", "test"], help="suite split")
    p.add_argument("--seed", type=int, default=0, help="suite seed")
    p.add_argument(
        "--score",
        default=config_default("score"),
        help="text-centric score: text_topk (default), topk_mass, entropy, text_mass",
    )
    p.add_argument("--theta", type=float, default=config_default("theta"), help="static-head threshold on the score")
    p.add_argument("--window", type=int, default=config_default("window"), help="observation window (last tokens)")
    p.add_argument(
        "--score-top-ratio",
        type=float,
        default=config_default("score_top_ratio"),
        help="share of keys topk_mass and text_topk count",
    )
    p.add_argument("--decode-steps", type=int, default=4, help="decode steps compared for top-k overlap (>= 2)")
    p.add_argument("--top-k", type=int, default=16, help="visual tokens per step compared (at most half of them)")
    p.add_argument("--out", default=None, help="profile JSON to write (arrays go next to it as .safetensors)")
    p.add_argument("--plot", default=None, help="also draw a layers x heads heatmap to this PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run, profile_action=None)

    actions = p.add_subparsers(dest="profile_action", metavar="{show}")
    s = actions.add_parser("show", help="print a saved profile's summary table")
    s.add_argument("profile", help="profile JSON written by `hybridkv profile --out`")
    s.add_argument("--heads", action="store_true", help="one row per (layer, KV head) instead of per layer")
    s.add_argument("--plot", default=None, help="also draw the heatmap of the saved profile to this PNG")
    s.set_defaults(handler=show)


def _fmt(x: float, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def print_summary(profile: Any, *, heads: bool = False, console: Any = None) -> None:
    """Rich table: per layer (or per head) the static share, online static rate, score, flip rate, overlap."""
    from rich.console import Console
    from rich.table import Table

    from ..profile import describe_fingerprint

    console = console or Console()
    calib = profile.calib
    console.print(
        f"[bold]{describe_fingerprint(profile.fingerprint)}[/bold]\n"
        f"score {profile.score_name}, theta {profile.theta:g}; {calib.get('samples')} inputs from "
        f"{calib.get('source')}"
        + (f" ({', '.join(calib['tasks'])})" if calib.get("tasks") else "")
        + f"; hybridkv {profile.library_version}"
    )
    if heads:
        table = Table(title="per KV head")
        for col in ("layer", "head", "type", "static rate", "score mean", "score std", "flip rate", "top-k overlap"):
            table.add_column(col, justify="right")
        types = profile.static_types()
        layers, kv = profile.shape
        for i in range(layers):
            for h in range(kv):
                table.add_row(
                    str(i),
                    str(h),
                    "static" if bool(types[i, h]) else "dynamic",
                    _fmt(float(profile.static_rate[i, h]), 2),
                    _fmt(float(profile.score_mean[i, h])),
                    _fmt(math.sqrt(max(float(profile.score_var[i, h]), 0.0))),
                    _fmt(float(profile.flip_rate[i, h]), 2),
                    _fmt(float(profile.topk_overlap[i, h])),
                )
        console.print(table)
        return
    table = Table(title="per layer (means over KV heads)")
    for col in ("layer", "static heads", "online static rate", "score mean", "score std", "flip rate", "top-k overlap"):
        table.add_column(col, justify="right")
    kv = profile.shape[1]
    rows = profile.layer_summary()
    for r in rows:
        table.add_row(
            str(r["layer"]),
            f"{round(r['static_share'] * kv)}/{kv}",
            _fmt(r["static_rate"], 2),
            _fmt(r["score_mean"]),
            _fmt(r["score_std"]),
            _fmt(r["flip_rate"], 2),
            _fmt(r["topk_overlap"]),
        )
    static = int(profile.static_types().sum())
    total = profile.shape[0] * kv
    table.add_section()
    seen = [r["topk_overlap"] for r in rows if not math.isnan(r["topk_overlap"])]
    table.add_row(
        "all",
        f"{static}/{total}",
        _fmt(float(profile.static_rate.mean()), 2),
        _fmt(float(profile.score_mean.mean())),
        _fmt(sum(r["score_std"] for r in rows) / len(rows)),
        _fmt(float(profile.flip_rate.mean()), 2),
        _fmt(sum(seen) / len(seen) if seen else math.nan),
    )
    console.print(table)


def _check_outputs(args: argparse.Namespace) -> Path:
    """Fail on a bad --out/--plot before any model work."""
    if not args.out:
        raise ConfigError("profile needs --out FILE.json, e.g. `hybridkv profile --out profile.json`")
    out = Path(args.out)
    if out.suffix == ".safetensors":
        raise ConfigError(f"--out {out} names the arrays file; pass the JSON path, e.g. {out.with_suffix('.json')}")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise ConfigError(f"--plot {args.plot} must end in .png")
    return out


def run(args: argparse.Namespace) -> int:
    """Profile a model over a calibration set, write the profile, print the summary table."""
    if getattr(args, "profile_action", None) == "show":
        return show(args)
    out = _check_outputs(args)
    from ..config import HybridKVConfig
    from ..profiling import calib_source

    # validate every option before loading anything
    HybridKVConfig(
        budget=1.0, score=args.score, theta=args.theta, window=args.window, score_top_ratio=args.score_top_ratio
    )
    if args.decode_steps < 2:
        raise ConfigError(f"--decode-steps must be >= 2 (overlap compares consecutive steps), got {args.decode_steps}")
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    items, total, calib = calib_source(args.calib, samples=args.samples, split=args.split, seed=args.seed)

    from rich.console import Console

    from ..models import load_model
    from ..profile import plot_profile, save_profile
    from ..profiling import profile_model

    loaded = load_model(args.model)
    err = Console(stderr=True)
    if not args.no_progress:
        from rich.progress import track

        items = track(items, total=total, description=f"profiling {loaded.name}", console=err, transient=True)
    t0 = time.perf_counter()
    profile = profile_model(
        loaded,
        items,
        score=args.score,
        theta=args.theta,
        window=args.window,
        score_top_ratio=args.score_top_ratio,
        decode_steps=args.decode_steps,
        top_k=args.top_k,
        calib=calib,
    )
    elapsed = time.perf_counter() - t0
    save_profile(profile, out)
    if args.plot:
        plot_profile(profile, args.plot)
    print_summary(profile)
    wrote = f"{out} (+ {out.with_suffix('.safetensors').name})" + (f", {args.plot}" if args.plot else "")
    Console().print(f"profiled {profile.calib['samples']} inputs in {elapsed:.1f} s; wrote {wrote}")
    return 0


def show(args: argparse.Namespace) -> int:
    """Print the summary table of a saved profile (and optionally re-draw its heatmap)."""
    from ..profile import load_profile, plot_profile

    profile = load_profile(args.profile)
    print_summary(profile, heads=args.heads)
    if getattr(args, "plot", None):
        plot_profile(profile, args.plot)
    return 0
