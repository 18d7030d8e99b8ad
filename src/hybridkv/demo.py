"""`hybridkv demo`: the full cache and HybridKV side by side on the embedded model.

A few held-out items of the suite (a grid, a multi-image question, a long many-image prompt) are
answered with the full cache and with HybridKV at ``budget``, twice: with the question in the prompt
that is compressed, and with the question asked after the images were compressed. Each row shows the
answer next to the expected one, the KV bytes kept per tier and the decode speed, all measured.

Both settings are shown because they differ in kind: a one-word answer is the first generated token,
which is computed from the full prefill when the question is part of it, so compression can only
change it when the question comes afterwards (the way a user asks about an image already seen).
"""

from __future__ import annotations

from dataclasses import dataclass

from .data import generate_items, score
from .defaults import EMBEDDED_DIR, EMBEDDED_MODEL
from .generation import generation_record
from .methods import get_method
from .models import load_model
from .report import make_console, print_demo_rows


@dataclass(frozen=True)
class DemoCase:
    """One suite item the demo asks: the task and its test-split index."""

    label: str
    task: str
    index: int


CASES: tuple[DemoCase, ...] = (
    DemoCase("grid", "grid", 0),
    DemoCase("multi-image", "multi_image", 0),
    DemoCase("long prompt", "long_mixed", 0),
)
# --fast (CI): the long prompt with 3 grids instead of 8-12, everything else the same.
FAST_OPTIONS: dict[str, tuple[tuple[str, int], ...]] = {"long_mixed": (("min_images", 3), ("max_images", 3))}


def demo_items(fast: bool) -> list[tuple[str, object]]:
    """(label, TaskItem) for every case, from the test split (never seen in training)."""
    out = []
    for case in CASES:
        options = dict(FAST_OPTIONS.get(case.task, ())) if fast else {}
        item = generate_items(case.task, "test", case.index + 1, **options)[case.index]
        out.append((case.label, item))
    return out


def run_demo(
    *, model: str = EMBEDDED_MODEL, budget: float | int = 0.1, max_new_tokens: int = 8, fast: bool = False
) -> int:
    console = make_console()
    if model == EMBEDDED_MODEL and not (EMBEDDED_DIR / "config.json").is_file():
        from .embedded import build_untrained

        console.print(
            f"[yellow]No trained weights in {EMBEDDED_DIR}: running the embedded architecture untrained "
            "(answers are noise; bytes and timings are real).[/yellow]"
        )
        loaded = build_untrained()
    else:
        loaded = load_model(model)
    hybrid = get_method("hybridkv", budget=budget)
    runs = [(get_method("full"), "aware"), (hybrid, "aware"), (hybrid, "agnostic")]
    items = demo_items(fast)
    rows = []
    for label, item in items:
        images = [*item.images, *(item.video or ())]
        for method, setting in runs:
            record = generation_record(
                loaded, item.prompt, images, method, max_new_tokens=max_new_tokens, setting=setting
            )
            record.update(case=label, expected=item.answer, correct=score(record["text"], item.answer))
            rows.append(record)
    print_demo_rows(rows, title=f"full cache vs HybridKV at budget {budget} ({loaded.name})", console=console)
    for label, item in items:
        console.print(f"[bold]{label}[/bold]: {item.prompt}")
    console.print(
        "Next: `hybridkv eval` (accuracy vs KV budget for every method), `hybridkv generate --help` (your prompts)."
    )
    return 0
