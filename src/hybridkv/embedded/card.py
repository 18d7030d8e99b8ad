"""The embedded model's card (``README.md`` next to its weights), written from measurements only.

Everything in the card comes from two files: the run's ``training.json`` (steps, time, settings, the
training mixture, versions) and an evaluation of the shipped weights on the suite's test split
(``hybridkv.eval`` results). The quality bar the model is held to is stated with each number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hybridkv.eval.summary import SummaryRow
from hybridkv.models.frame_pairs import pairs_frames

FULL_CACHE_BAR = 0.9
"""Every task's full-cache exact-match accuracy on the test split must reach this."""
EVICTION_DROP_BAR = 0.2
"""At a 10% budget StreamingLLM eviction must lose at least this much on the visual-lookup tasks."""
VISUAL_LOOKUP_TASKS: tuple[str, ...] = ("grid", "multi_image", "long_mixed")
CARD_BUDGET = 0.1


def _row(rows: Sequence[SummaryRow], method: str, budget: float | None) -> SummaryRow | None:
    return next((r for r in rows if r.method == method and r.budget == budget), None)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _text_line(arch: Mapping[str, Any]) -> str:
    if not arch:
        return "- Text model: see `config.json` (`text_config`)."
    return (
        f"- Text model: {arch['text_layers']} layers, hidden size {arch['hidden']}, {arch['heads']} query heads "
        f"sharing {arch['kv_heads']} KV heads of dimension {arch['head_dim']}, multimodal RoPE (theta "
        f"{arch['rope_theta']:g}), tied embeddings."
    )


def _vision_line(arch: Mapping[str, Any]) -> str:
    if not arch:
        return "- Vision: Qwen2.5-VL ViT, 14 px patches merged 2x2 (one visual token per 28x28 px block)."
    return (
        f"- Vision: Qwen2.5-VL ViT, {arch['vision_depth']} blocks of width {arch['vision_hidden']} (windowed and "
        "full attention), 14 px patches merged 2x2: one visual token per 28x28 px block."
    )


def architecture_of(config: Any) -> dict[str, Any]:
    """The card's architecture facts from a Qwen2.5-VL config."""
    text, vision = config.text_config, config.vision_config
    return {
        "text_layers": text.num_hidden_layers,
        "hidden": text.hidden_size,
        "heads": text.num_attention_heads,
        "kv_heads": text.num_key_value_heads,
        "head_dim": getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads,
        "rope_theta": float(text.rope_parameters["rope_theta"]),
        "vision_depth": vision.depth,
        "vision_hidden": vision.hidden_size,
        "frame_pairs": pairs_frames(config),
    }


def quality_checks(rows: Sequence[SummaryRow]) -> dict[str, Any]:
    """The bar, task by task: full-cache accuracy and the StreamingLLM drop at 10%, each with pass/fail."""
    full = _row(rows, "full", None)
    streaming = _row(rows, "streaming", CARD_BUDGET)
    if full is None:
        return {}
    out: dict[str, Any] = {"full_cache": {}, "streaming_drop": {}}
    for task, acc in full.accuracy.items():
        out["full_cache"][task] = {"accuracy": acc, "passes": acc >= FULL_CACHE_BAR}
    if streaming is not None:
        for task in VISUAL_LOOKUP_TASKS:
            if task in full.accuracy and task in streaming.accuracy:
                drop = full.accuracy[task] - streaming.accuracy[task]
                out["streaming_drop"][task] = {"drop": drop, "passes": drop >= EVICTION_DROP_BAR}
    return out


def training_stages(training: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The runs that made a model, first to last: each ``--init`` run's ``training.json`` before its own."""
    stages = [training]
    while "init_training" in stages[0]:
        stages.insert(0, stages[0]["init_training"])
    return stages


def training_commands(training: Mapping[str, Any], out: str = "runs/embedded") -> list[str]:
    """The ``train_tiny_vlm.py`` commands that reproduce a run from its ``training.json``, stage after stage
    (a stage started with ``--init`` from the one before, into ``OUT-stageK``): each stage's first command
    with its starting settings that differ from the defaults, then one resume per recorded change of
    settings (staged guidance), each stopping where the next change was made, the last where it stopped."""
    stages = training_stages(training)
    outs = [f"{out}-stage{k}" for k in range(1, len(stages))] + [out]
    commands: list[str] = []
    for k, stage in enumerate(stages):
        init = {"init": outs[k - 1]} if k else {}
        commands += _stage_commands(stage, outs[k], init)
    return commands


def _stage_commands(training: Mapping[str, Any], out: str, overrides: Mapping[str, Any]) -> list[str]:
    from .training import TrainSettings

    defaults = TrainSettings().to_json()
    changes = sorted(training.get("settings_changes", []), key=lambda c: c["step"])
    start = {**training.get("settings", {}), **overrides}
    for change in reversed(changes):  # undo the changes, latest first
        for name, (before, _) in change["changed"].items():
            start[name] = before
    script = f"python scripts/train_tiny_vlm.py --out {out}"
    last = "" if training.get("completed", True) else f"--stop-after {training.get('steps')}"
    stops = [f"--stop-after {c['step']}" for c in changes] + [last]
    first = _flags({k: v for k, v in start.items() if defaults.get(k) != v})
    commands = [" ".join(filter(None, (script, first, stops[0])))]
    for change, stop in zip(changes, stops[1:], strict=True):
        after = _flags({name: value for name, (_, value) in change["changed"].items()})
        commands.append(" ".join(filter(None, (script, "--resume", after, stop))))
    return commands


def _flags(values: Mapping[str, Any]) -> str:
    def text(value: Any) -> str:
        if isinstance(value, list | tuple):
            return ",".join(str(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    def flag(name: str, value: Any) -> str:
        option = f"--{name.replace('_', '-')}"
        return option if value is True else f"{option} {text(value)}"  # switches take no value

    return " ".join(flag(name, v) for name, v in sorted(values.items()) if v is not None and v is not False)


def _data_of(settings: Mapping[str, Any]) -> str:
    mixture = f"task mixture `{settings.get('mixture', 'default')}`"
    tasks = settings.get("tasks")
    return f"{mixture}, only {', '.join(f'`{t}`' for t in tasks)}" if tasks else mixture


def _threads(n: Any) -> str:
    return "1 thread" if n == 1 else f"{n} threads"


def _stage_lines(stages: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for k, stage in enumerate(stages, start=1):
        settings = stage.get("settings", {})
        name = f"Stage {k} of {len(stages)}: " if len(stages) > 1 else ""
        start = "from the previous stage's weights, " if settings.get("init") else ""
        lines.append(
            f"- {name}{start}{stage.get('steps')} optimizer steps of {settings.get('batch_size')} items, "
            f"{_data_of(settings)} (AdamW, peak lr {settings.get('lr')}, "
            f"{settings.get('warmup_steps')} warmup steps, cosine decay), seed {stage.get('seed')}, "
            f"{stage.get('seconds', 0) / 60:.0f} min on CPU ({_threads(stage.get('threads'))} in its last segment)."
        )
    total = sum(stage.get("seconds", 0) for stage in stages) / 60
    if len(stages) > 1:
        lines.append(f"- {total:.0f} min of training in all.")
    return lines


def model_card(
    training: Mapping[str, Any],
    rows: Sequence[SummaryRow],
    *,
    items_per_task: int,
    parameters: int,
    weights_bytes: int,
    eval_command: str,
    architecture: Mapping[str, Any] | None = None,
) -> str:
    """Markdown for the model card: what the model is, how it was trained, and how well it answers."""
    methods = [r for r in rows if r.budget in (None, CARD_BUDGET)]
    tasks = list(next((r.accuracy for r in rows if r.method == "full"), {}))
    checks = quality_checks(rows)
    lines = [
        "# hybridkv embedded model",
        "",
        "A small Qwen2.5-VL (multimodal RoPE, windowed ViT with 2x2 patch merging, grouped-query attention) trained "
        "from scratch by `scripts/train_tiny_vlm.py` on the train split of hybridkv's synthetic task suite "
        "(`hybridkv.data`). It exists so that accuracy against KV budget is a real measurement on a machine "
        "with no model downloads. It knows only the suite's tasks; it is not a general assistant.",
        "",
        "## Model",
        "",
        f"- {parameters / 1e6:.2f} M parameters, {weights_bytes / 2**20:.1f} MiB of fp32 safetensors.",
        _text_line(architecture or {}),
        _vision_line(architecture or {}),
        "- Tokenizer: byte-level BPE (1,024 entries) trained on the suite's text; Qwen-VL special tokens; "
        "the chat template numbers images (`Image k: <|vision_start|>...`).",
        "",
        "## Training",
        "",
        *_stage_lines(training_stages(training)),
        "- Data: items generated on the fly from the train split, mixed by task with a short curriculum from "
        "easy variants to the suite's defaults (the mixture is in `training.json`). The validation and test "
        "splits never appear in training: the suite assigns splits by content.",
        "- Reproduce: " + ", then ".join(f"`{c}`" for c in training_commands(training)) + ", then "
        "`python scripts/ship_embedded.py --run runs/embedded`.",
        "",
        f"## Accuracy (exact match, test split, {items_per_task} items per task, question-agnostic)",
        "",
        "The images and context are compressed first and the question asked afterwards: a one-word answer "
        "is the first generated token, which every method computes from the full prefill when the question "
        "is part of the compressed prompt, so only this setting shows what compression loses.",
        "",
        "| method | budget | " + " | ".join(tasks) + " | mean |",
        "|---|---|" + "---|" * (len(tasks) + 1),
    ]
    for r in methods:
        cells = [_pct(r.accuracy.get(t)) for t in tasks]
        budget = "-" if r.budget is None else f"{r.budget:g}"
        lines.append(f"| {r.method} | {budget} | " + " | ".join(cells) + f" | {_pct(r.mean_accuracy)} |")
    lines += ["", f"Reproduce: `{eval_command}`", "", "## Quality bar", ""]
    for task, check in checks.get("full_cache", {}).items():
        verdict = "meets" if check["passes"] else "**misses**"
        lines.append(f"- {task}: full cache {_pct(check['accuracy'])}% {verdict} the {FULL_CACHE_BAR:.0%} bar.")
    for task, check in checks.get("streaming_drop", {}).items():
        verdict = "meets" if check["passes"] else "**misses**"
        lines.append(
            f"- {task}: StreamingLLM at {CARD_BUDGET:g} loses {_pct(check['drop'])} points, {verdict} the "
            f"{EVICTION_DROP_BAR * 100:.0f}-point bar."
        )
    lines += [
        "",
        "## Limitations",
        "",
        "- Trained only on the suite: other prompts, image styles or answer formats get meaningless answers.",
        "- Video clips are fed as numbered images, one per frame, not through Qwen2.5-VL's video path"
        + (
            "; each frame after a clip's first shows the frame before it in its temporal patch (`frame_pairs`)."
            if (architecture or {}).get("frame_pairs")
            else "."
        ),
        "- Tiny: per-step overhead, not attention, dominates its decode time; see docs/performance.md for "
        "speed at real sizes.",
        "",
    ]
    return "\n".join(lines)
