"""Decode speed and KV memory of each method on one random text model, all in the same run.

Random weights are fine for speed: the work per token does not depend on them. Shapes default to a
small CPU-friendly model; ``--preset qwen2.5-7b`` uses the language model of Qwen2.5-VL-7B (28 layers,
hidden 3584, 28 query heads, 4 KV heads, head_dim 128), meant for a GPU in bf16.

    python scripts/bench_decode.py --context 4096 --budget 0.1 --out results/bench.json
    python scripts/bench_decode.py --preset qwen2.5-7b --device cuda --dtype bfloat16 --context 32768

Every figure is reported next to the full cache's from the same process, as a ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from hybridkv.generation import generate
from hybridkv.methods import get_method

PRESETS = {
    "cpu-small": dict(
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=8,
        num_attention_heads=12,
        num_key_value_heads=2,
        head_dim=64,
    ),
    "qwen2.5-7b": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        head_dim=128,
    ),
}


def build_model(preset: str, device: str, dtype: torch.dtype, context: int) -> Qwen2ForCausalLM:
    cfg = Qwen2Config(vocab_size=32000, max_position_embeddings=max(context * 2, 4096), **PRESETS[preset])
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg).to(dtype).eval()
    return model


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(args: argparse.Namespace) -> dict:
    dtype = getattr(torch, args.dtype)
    model = build_model(args.preset, args.device, dtype, args.context)
    ids = torch.randint(0, 32000, (1, args.context), device=args.device, generator=None)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    methods = [("full", {})] + [(m, {"budget": args.budget}) for m in args.methods]
    rows = []
    # warm-up (allocator, kernels), not reported
    generate(
        model,
        {"input_ids": ids[:, :256], "attention_mask": inputs["attention_mask"][:, :256]},
        get_method("full"),
        max_new_tokens=4,
    )
    for name, options in methods:
        method = get_method(name, **options)
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        sync(args.device)
        for _ in range(args.repeat - 1):  # warm-up runs of this very method (first-call kernel loading)
            generate(model, inputs, method, max_new_tokens=4, min_new_tokens=4)
        sync(args.device)
        t0 = time.perf_counter()
        result = generate(model, inputs, method, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
        sync(args.device)
        total = time.perf_counter() - t0
        row = {
            "method": name,
            "budget": options.get("budget", 1.0),
            "prefill_s": round(result.prefill_s, 4),
            "decode_ms_per_token": round(result.decode_ms_per_token, 3),
            "total_s": round(total, 3),
            "kv_hot_bytes": result.kv_hot_bytes,
            "kv_cold_bytes": result.kv_cold_bytes,
            "full_kv_bytes": result.full_kv_bytes,
            "static_fraction": result.cache_stats.get("static_fraction"),
            "chunk_hit_rate": result.cache_stats.get("chunk_hit_rate"),
            "time_s": result.cache_stats.get("time_s"),
        }
        if args.device.startswith("cuda"):
            row["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
        rows.append(row)
        del result
    base = rows[0]
    for row in rows:
        row["decode_speedup_vs_full"] = round(base["decode_ms_per_token"] / row["decode_ms_per_token"], 3)
        row["hot_ratio_vs_full"] = round(row["kv_hot_bytes"] / base["kv_hot_bytes"], 4)
    return {
        "rows": rows,
        "config": vars(args),
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor(),
            "threads": torch.get_num_threads(),
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu-small")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--context", type=int, default=4096)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--budget", type=float, default=0.1)
    p.add_argument("--methods", nargs="+", default=["hybridkv", "text-prior-only", "retrieval-only"])
    p.add_argument("--repeat", type=int, default=2, help="runs per method; the last one is reported")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (1 avoids oversubscription noise)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(args)
    print(f"{'method':18s} {'prefill s':>9s} {'decode ms/tok':>13s} {'speedup':>8s} {'hot/full':>8s} {'cold MiB':>9s}")
    for r in report["rows"]:
        print(
            f"{r['method']:18s} {r['prefill_s']:9.3f} {r['decode_ms_per_token']:13.2f} "
            f"{r['decode_speedup_vs_full']:8.2f} {r['hot_ratio_vs_full']:8.3f} {r['kv_cold_bytes'] / 2**20:9.1f}"
        )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=2))
        tmp.replace(out)


if __name__ == "__main__":
    main()
