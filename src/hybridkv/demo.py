"""`hybridkv demo`: the full cache and HybridKV side by side on the default model.

The trained embedded model is not shipped yet, so the demo builds a tiny random Qwen2.5-VL in memory:
its answers are noise, but every byte count and timing is measured, and the comparison is the same
one the trained model will get.
"""

from __future__ import annotations

from .generation import generation_record
from .methods import get_method
from .models import tiny_random_model
from .models.testing import synthetic_image
from .report import make_console, print_rows

NOTE = (
    "[yellow]Note:[/yellow] the trained embedded model is not shipped yet; this demo runs a tiny [bold]random[/bold] "
    "Qwen2.5-VL built in memory. Its text is noise; the KV bytes and timings are real measurements. At this tiny "
    "size per-step overhead dominates decode time; see docs/performance.md for larger models."
)


def demo_cases(fast: bool) -> list[tuple[str, str, list]]:
    side = 448 if fast else 896  # 28 px per visual token: 256 or 1024 tokens
    small = 224 if fast else 448
    listing = " ".join(f"item {i}: {w}." for i, w in enumerate(["apple", "river", "stone", "cloud", "ember"] * 12))
    return [
        ("one image", "Describe the image in detail.", [synthetic_image(side, side, seed=1)]),
        ("two images", "What differs between the two images?", [synthetic_image(small, small, seed=s) for s in (2, 3)]),
        ("text only", f"{listing} What is item 7?", []),
    ]


def run_demo(*, budget: float | int = 0.1, max_new_tokens: int = 16, fast: bool = False) -> int:
    console = make_console()
    console.print(NOTE)
    loaded = tiny_random_model("qwen2_5_vl")
    methods = [get_method("full"), get_method("hybridkv", budget=budget)]
    rows = []
    for case, prompt, images in demo_cases(fast):
        for method in methods:
            record = generation_record(loaded, prompt, images, method, max_new_tokens=max_new_tokens)
            record["case"] = case
            rows.append(record)
    print_rows(rows, title=f"full cache vs HybridKV at budget {budget} ({loaded.name})", console=console)
    console.print("Next: `hybridkv eval --help` (accuracy vs budget), `hybridkv generate --help` (your prompts).")
    return 0
