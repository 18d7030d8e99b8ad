#!/usr/bin/env python
"""What selection at question time costs per question, against selection at prefill, in one process.

For each item, a ``Session`` per mode prefills the context once and asks the item's question; the
cache's own timers give the context prefill, the question's forward (for ``question``: reading the
parked context back, the question's dense attention over it, and the selection) and the decode, and
its stats the hot and cold bytes. The two modes alternate item by item, so load drifts hit both.

Example (docs/results.md, "Selection at question time")::

    python scripts/question_time_cost.py --model smollm2 --tasks needle_4k --limit 3 \\
        --out docs/results/question-time/cost-smollm2-4k.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hybridkv import Session, get_method, load_model  # noqa: E402
from hybridkv.data import split_question  # noqa: E402
from hybridkv.eval.tasks import get_task, load_items  # noqa: E402

MODES = ("prefill", "question")


def measure(loaded, item, mode: str, budget: float, max_new_tokens: int) -> dict:
    context, question = split_question(item.prompt)
    method = get_method("hybridkv", budget=budget, select_at=mode)
    t0 = time.perf_counter()
    with Session(loaded, method, context=context, images=list(item.images)) as chat:
        opened = time.perf_counter() - t0
        answer = chat.ask(question, max_new_tokens=max_new_tokens)
        stats = chat.cache.stats()
    result = answer.result
    return {
        "mode": mode,
        "item": item.id,
        "context_tokens": chat.context_tokens,
        "question_tokens": answer.question_tokens,
        "open_s": opened,
        "question_forward_s": result.prefill_s,
        "decode_ms_per_token": result.decode_ms_per_token,
        "hot_over_full": result.kv_hot_bytes / result.full_kv_bytes,
        "cold_over_full": result.kv_cold_bytes / result.full_kv_bytes,
        "timers_s": stats.time_s,
        "answer": answer.text,
        "correct": get_task(item.task).score(answer.text, item.answer),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--tasks", default="needle_4k")
    p.add_argument("--limit", type=int, default=3)
    p.add_argument("--budget", type=float, default=0.1)
    p.add_argument("--max-new-tokens", type=int, default=12)
    p.add_argument("--out", default="question-time-cost.json")
    args = p.parse_args()
    loaded = load_model(args.model)
    rows = []
    for item in load_items(args.tasks.split(","), "test", args.limit):
        for mode in MODES:
            rows.append(measure(loaded, item, mode, args.budget, args.max_new_tokens))
            r = rows[-1]
            print(
                f"{item.id} {mode:8s} open {r['open_s']:.2f}s question {r['question_forward_s']:.2f}s "
                f"decode {r['decode_ms_per_token']:.1f}ms/tok hot {r['hot_over_full']:.3f} "
                f"cold {r['cold_over_full']:.3f} {r['answer']!r}"
            )
    summary = {
        mode: {
            key: round(statistics.median(r[key] for r in rows if r["mode"] == mode), 4)
            for key in ("open_s", "question_forward_s", "decode_ms_per_token", "hot_over_full", "cold_over_full")
        }
        for mode in MODES
    }
    print(json.dumps(summary, indent=1))
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "summary": summary, "rows": rows}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
