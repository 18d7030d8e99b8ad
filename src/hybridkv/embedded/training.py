"""The training loop of the embedded model (``scripts/train_tiny_vlm.py`` is its command line).

Deterministic and resumable: step ``s`` trains on items drawn from (seed, s) alone, the learning rate
is a function of ``s`` alone, and a checkpoint restores weights, AdamW state and the RNG, so a run
stopped and resumed ends bit-identical to one that never stopped (same thread count). AdamW with
linear warmup and cosine decay; gradients accumulate over length-grouped micro-batches and the loss is
the mean over answer tokens (answer + end-of-turn) of the whole step.
"""

from __future__ import annotations

import json
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import transformers
from tqdm import tqdm

from hybridkv.errors import ConfigError
from hybridkv.models import LoadedModel, save_pretrained_dir
from hybridkv.models.frame_pairs import CONFIG_FLAG as FRAME_PAIRS_FLAG

from .checkpoint import load_checkpoint, read_state, save_checkpoint
from .evaluation import TaskResult, evaluate
from .examples import ANSWER_GUIDANCE, IGNORE_INDEX, Example, collate, micro_batches
from .guidance import (
    GUIDANCE_TERMS,
    LookupGuide,
    coordinate_token_losses,
    position_token_losses,
    recognition_token_losses,
)
from .mixture import named_mixture, select
from .model import build_untrained
from .prefetch import StepData
from .schedule import learning_rate

CHECKPOINT_DIR = "checkpoint"
LOG_FILE = "train_log.jsonl"
SUMMARY_FILE = "training.json"


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms a training step adds to the answers' loss (0 turns a term off); see
    :func:`train_step_loss` for what each does."""

    visual_mean_penalty: float = 0.0
    recognition: float = 0.0
    position: float = 0.0
    coordinates: float = 0.0
    lookup: float = 0.0
    query_position: float = 0.0
    image_code: float = 0.0
    word_code: float = 0.0
    ends_position: float = 0.0
    motion_lookup: float = 0.0

    @property
    def guided(self) -> bool:
        """Whether any term needs the last decoder layer's inputs (``guidance.LookupGuide``)."""
        terms = (
            self.lookup,
            self.query_position,
            self.image_code,
            self.word_code,
            self.ends_position,
            self.motion_lookup,
        )
        return any(terms)


# TrainSettings' loss weights, each with the LossWeights field it sets.
LOSS_WEIGHT_SETTINGS: dict[str, str] = {
    "visual_mean_penalty": "visual_mean_penalty",
    "recognition_loss": "recognition",
    "position_loss": "position",
    "coordinate_loss": "coordinates",
    "lookup_loss": "lookup",
    "query_position_loss": "query_position",
    "image_code_loss": "image_code",
    "word_code_loss": "word_code",
    "ends_position_loss": "ends_position",
    "motion_lookup_loss": "motion_lookup",
}


@dataclass(frozen=True)
class TrainSettings:
    """What defines a run's result; a resumed run must keep these (``steps`` may grow)."""

    steps: int = 6000
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    max_tokens: int = 512
    tasks: tuple[str, ...] | None = None
    mixture: str = "default"
    """Name of the task mixture drawn from (``hybridkv.embedded.mixture.MIXTURES``)."""
    follow_ups: int = 3
    visual_mean_penalty: float = 0.1
    """Weight of a penalty on the mean visual token (see :func:`train_step_loss`); 0 turns it off."""
    readouts: int = 0
    """Read-out turns per item (a whole list, grid row or scene spelled out; see ``hybridkv.embedded.readouts``),
    asked after the follow-ups."""
    recognition_loss: float = 0.0
    """Weight of the per-visual-token recognition loss (each token names the words it shows; see
    ``hybridkv.embedded.visual_targets``); 0 turns it off."""
    position_loss: float = 0.0
    """Weight of the loss asking each grid token to carry its cell's row and column (see
    ``hybridkv.embedded.visual_targets``); 0 turns it off."""
    init: str | None = None
    """A trained model directory (a run's output) whose weights start this run, with a fresh optimizer and
    schedule: staged training, e.g. the whole mixture after a text-only phase."""
    readout_items: float = 0.0
    """Share of items (of tasks that have read-outs) asked one read-out instead of their own question, as an
    item of its own: the layout under which a text-only probe learned to copy (see ``hybridkv.embedded.readouts``)."""
    lookup_loss: float = 0.0
    """Weight of the loss putting the last decoder layer's attention, at each answer word, on the prompt
    tokens that show that word (see ``hybridkv.embedded.guidance``); 0 turns it off."""
    query_position_loss: float = 0.0
    """Weight of the loss asking the last decoder layer's input, where a grid answer word is predicted, to
    carry that cell's row and column in the grid tokens' code (see ``hybridkv.embedded.guidance``)."""
    image_code_loss: float = 0.0
    """Weight of the loss asking the last decoder layer's input to carry each visual token's image number,
    and the asked image's number where an answer is read off one image (see ``hybridkv.embedded.guidance``)."""
    word_code_loss: float = 0.0
    """Weight of the loss asking the last decoder layer's input to carry the words each visual token shows,
    and at the answer the words its question names the object by (see ``hybridkv.embedded.guidance``)."""
    ends_position_loss: float = 0.0
    """Weight of the loss asking, for a motion, each half of the last layer's heads to read where its end of
    the object's path is (``guidance.ends_position_losses``); 0 turns it off."""
    coordinate_loss: float = 0.0
    """Weight of the loss asking each visual token with a known row and column to carry them as coordinates
    along two fixed directions (``guidance.coordinate_token_losses``): positions the layers can subtract,
    for a motion; 0 turns it off."""
    motion_lookup_loss: float = 0.0
    """Weight of the loss asking a lower decoder layer, at each block naming a derived word, to look at the same
    object in earlier frames (``guidance.motion_lookup_losses``): where it was, for the layers above to
    compare with where it is (``motion_words``); 0 turns it off."""
    motion_words: bool = False
    """Moving objects' blocks name the way they move from the frame where they have moved a block on, and a
    motion's answer is read off them as one word (``visual_targets.motion_boxes``) instead of at both ends
    of the path: the language model's lower layers are asked (through the word code) to compare a block's
    place with the same object's in the frames before, where the ends' heads had to compare two places at
    the answer."""
    frame_pairs: bool = False
    """Every video frame after a clip's first is shown beside the frame before it, in the vision tower's
    temporal patch (:mod:`hybridkv.models.frame_pairs`; saved in the model's config, so the trained model is
    fed the same way everywhere): a moving object's tokens show the motion, as a colour is shown, where
    frames fed alone leave the direction to be worked out across frames. A model trained without it starts
    from frames that repeat themselves, so its first steps see a blend of two frames at moving objects."""
    count_words: bool = False
    """Each object of a counting scene names, in the word code, how many objects of its colour and shape the
    scene holds (``visual_targets.count_boxes``), for the answer to copy beside the count's sink share:
    objects matched with objects in the lower layers, where the share alone matched the question's words
    with the objects (measured on the third stage: the share is biased by colour and by the number of
    distractors)."""

    @property
    def loss_weights(self) -> LossWeights:
        return LossWeights(**{field: getattr(self, name) for name, field in LOSS_WEIGHT_SETTINGS.items()})

    def __post_init__(self) -> None:
        weights = tuple(LOSS_WEIGHT_SETTINGS)
        if min(getattr(self, name) for name in weights) < 0:
            raise ConfigError(
                ", ".join(f"{name}={getattr(self, name)}" for name in weights) + ": loss weights must be non-negative"
            )
        if self.follow_ups < 0 or self.readouts < 0:
            raise ConfigError(f"follow_ups={self.follow_ups} and readouts={self.readouts} must be non-negative")
        if not 0.0 <= self.readout_items <= 1.0:
            raise ConfigError(f"readout_items={self.readout_items} is a share of items; give a value in [0, 1]")
        for name in ("steps", "batch_size", "max_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least 1")
        if self.lr <= 0 or self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            raise ConfigError("lr and grad_clip must be positive, warmup_steps and weight_decay non-negative")
        if self.seed < 0:
            raise ConfigError(f"seed={self.seed} must be a non-negative integer")
        named_mixture(self.mixture)
        if self.tasks is not None:
            object.__setattr__(self, "tasks", tuple(self.tasks))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["tasks"] = None if self.tasks is None else list(self.tasks)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class RunOptions:
    """How a run is executed and observed; free to change between resumes."""

    out_dir: Path
    resume: bool = False
    threads: int = 1
    eval_every: int = 250
    eval_items: int = 16
    final_eval_items: int = 64
    checkpoint_every: int = 100
    max_minutes: float | None = None
    stop_after: int | None = None
    progress: bool = True
    device: str = "cpu"
    data_workers: int = 0
    """Processes that prepare the next steps' examples while the model trains (0: in the main process)."""


@dataclass(frozen=True)
class TrainResult:
    """How far the run got and how well it does."""

    steps_done: int
    completed: bool
    seconds: float
    validation: dict[str, float]
    losses: list[float]


# Settings a resumed run may change: the schedule's length, and the weights of the dense training signals
# (staged guidance: a signal added or dropped part-way, keeping the optimizer state and the schedule).
CHANGEABLE_ON_RESUME = frozenset({"steps", *LOSS_WEIGHT_SETTINGS} - {"visual_mean_penalty"})


def settings_for_resume(out_dir: Path, given: dict[str, Any]) -> TrainSettings:
    """Settings of the checkpoint in ``out_dir``, with ``given`` (non-None) values checked against them.

    Only :data:`CHANGEABLE_ON_RESUME` may differ: training further (or less far) changes the schedule's
    length; a dense signal's weight may change from the resumed step on (the log records the change).
    """
    saved = read_state(out_dir / CHECKPOINT_DIR)["settings"]
    merged = dict(saved)
    for name, value in given.items():
        if value is None:
            continue
        value = list(value) if isinstance(value, tuple) else value
        if name not in CHANGEABLE_ON_RESUME and saved.get(name) != value:
            raise ConfigError(
                f"--{name.replace('_', '-')} {value} differs from the checkpoint's {saved.get(name)}; "
                "drop the flag to resume, or train into a new --out"
            )
        merged[name] = value
    return TrainSettings.from_json(merged)


def train(settings: TrainSettings, options: RunOptions) -> TrainResult:
    """Train (or resume), checkpoint, evaluate, and export a loadable model directory to ``out_dir``."""
    started = time.monotonic()
    torch.set_num_threads(options.threads)
    torch.manual_seed(settings.seed)
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mixture = select(named_mixture(settings.mixture), settings.tasks)
    loaded = build_untrained(settings.seed)
    setattr(loaded.model.config, FRAME_PAIRS_FLAG, settings.frame_pairs)
    if settings.init is not None and not options.resume:  # a resumed run takes its weights from the checkpoint
        load_initial_weights(loaded, settings.init)
    data = StepData(loaded, mixture, settings, workers=options.data_workers)
    model = loaded.model
    model.to(options.device)
    model.train()
    optimizer = torch.optim.AdamW(_param_groups(model, settings.weight_decay), lr=settings.lr, betas=(0.9, 0.98))
    step, elapsed_before = 0, 0.0
    if options.resume:
        resumed = load_checkpoint(out / CHECKPOINT_DIR, model, optimizer)
        saved = TrainSettings.from_json(resumed.settings).to_json()  # a setting added since takes its default
        changed = {k: v for k, v in settings.to_json().items() if saved.get(k) != v}
        if set(changed) - CHANGEABLE_ON_RESUME:
            raise ConfigError("the settings differ from the checkpoint's; merge them with settings_for_resume")
        step, elapsed_before = resumed.step, resumed.elapsed_seconds
    log = _Log(out / LOG_FILE, keep_through=step)
    if options.resume and changed:
        log.write({"step": step, "settings_changed": {k: [saved.get(k), v] for k, v in changed.items()}})

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - started

    def checkpoint() -> None:
        save_checkpoint(
            out / CHECKPOINT_DIR, model, optimizer, step=step, elapsed_seconds=elapsed(), settings=settings.to_json()
        )

    eval_tasks = sorted({v.task for v in mixture})
    losses: list[float] = []
    deadline = None if options.max_minutes is None else started + 60.0 * options.max_minutes
    last = settings.steps if options.stop_after is None else min(settings.steps, options.stop_after)
    bar = tqdm(total=settings.steps, initial=step, disable=not options.progress, unit="step", dynamic_ncols=True)
    try:  # the worker pool and the bar are released on an interrupt or an error too
        while step < last:
            record = _train_step(loaded, optimizer, data.get(step, last), settings, step)
            record["elapsed"] = round(elapsed(), 2)  # wall-clock seconds of the run, data preparation included
            step += 1
            losses.append(record["loss"])
            log.write(record)
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}", s_step=f"{record['seconds']:.2f}")
            if options.eval_every and step % options.eval_every == 0 and step < settings.steps:
                _report(bar.write, log, step, evaluate(loaded, n_per_task=options.eval_items, tasks=eval_tasks))
            if options.checkpoint_every and step % options.checkpoint_every == 0:
                checkpoint()
            if deadline is not None and time.monotonic() >= deadline:
                bar.write(f"wall-clock budget of {options.max_minutes} min used at step {step}; saving")
                break
    finally:
        bar.close()
        data.close()
    checkpoint()
    results = evaluate(loaded, n_per_task=options.final_eval_items, tasks=eval_tasks)
    _report(tqdm.write, log, step, results)
    validation = {task: r.accuracy for task, r in results.items()}
    model.eval()
    save_pretrained_dir(loaded, out)
    summary = {
        "steps": step,
        "target_steps": settings.steps,
        "completed": step >= settings.steps,
        "seconds": round(elapsed(), 1),
        "threads": options.threads,
        "validation_accuracy": validation,
        "validation_items_per_task": options.final_eval_items,
        "seed": settings.seed,
        "settings": settings.to_json(),
        "settings_changes": _settings_changes(out / LOG_FILE),
        "mixture": [v.to_json() for v in mixture],
        "versions": _versions(),
    }
    earlier = init_training(summary)
    if earlier is not None:
        summary["init_training"] = earlier
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return TrainResult(step, step >= settings.steps, elapsed(), validation, losses)


def init_training(training: dict[str, Any]) -> dict[str, Any] | None:
    """The ``training.json`` of the run whose weights started this one (``--init``), kept with it so that a
    staged model's card can tell and reproduce every stage; None for a run from scratch."""
    if "init_training" in training:
        return training["init_training"]
    init = training.get("settings", {}).get("init")
    path = None if init is None else Path(init) / SUMMARY_FILE
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def _train_step(
    loaded: LoadedModel,
    optimizer: torch.optim.Optimizer,
    examples: Sequence[Example],
    settings: TrainSettings,
    step: int,
) -> dict[str, Any]:
    """One optimizer step (0-based ``step``) on that step's examples; returns its log record."""
    t0 = time.monotonic()
    lr = learning_rate(step, settings.lr, settings.steps, min(settings.warmup_steps, settings.steps // 10))
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss, variant_losses = train_step_loss(loaded, examples, settings.max_tokens, settings.loss_weights)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(loaded.model.parameters(), settings.grad_clip))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {
        "step": step + 1,
        "loss": loss,
        "lr": lr,
        "grad_norm": grad_norm,
        "seconds": round(time.monotonic() - t0, 3),
        "variant_loss": variant_losses,
    }


def train_step_loss(
    loaded: LoadedModel,
    examples: Sequence[Example],
    max_tokens: int,
    weights: LossWeights = LossWeights(),
) -> tuple[float, dict[str, float]]:
    """Accumulate gradients of the step's mean answer-token loss; return it and a loss per example label.

    The step's loss covers every supervised token, the end-of-turn tokens included. The per-label losses
    leave the end-of-turn tokens out: they are the loss of the answers' own tokens, to compare with
    ln(number of plausible answers). (End-of-turn is learned within a few dozen steps; averaged in, it
    would halve a one-token answer's loss and make a plateau at the answer prior look like progress.)

    ``weights.visual_mean_penalty`` adds that weight times the mean square of the mean visual token (the
    patch merger's output averaged over a micro-batch's visual tokens). Trained from scratch, the merger
    otherwise grows a common component two orders of magnitude larger than what distinguishes one token
    from another; after the language model's RMSNorm every visual token then looks alike and no question
    can pick out the right one. The penalty removes only the common part; what differs between tokens is
    free.

    The other weights add the mean of :func:`recognition_token_losses` (labelled visual tokens, reported
    under ``(recognition)``), :func:`position_token_losses` (grid tokens, ``(position)``),
    :func:`coordinate_token_losses` (the same tokens, ``(coordinates)``),
    :func:`lookup_token_losses` (answer words with a source, ``(lookup)``), :func:`query_position_losses`
    (``(query position)``), :func:`image_code_losses` (``(image code)`` at visual tokens, ``(asked image)``
    at queries) and :func:`word_code_losses` (``(word code)``, ``(asked words)``), each times its weight. No
    extra term is part of the returned step loss, which stays comparable between runs.
    """
    total_tokens = sum(e.answer_tokens for e in examples)
    per_label: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    step_loss = 0.0
    merged: list[torch.Tensor] = []
    emitted: list[torch.Tensor] = []  # the vision tower's output, tokens in prompt order
    visual = loaded.model.model.visual
    with ExitStack() as hooks:  # nothing stays on the model after the step, even on an error
        for module, capture in (
            (visual.merger, merged.append),
            (visual, lambda out: emitted.append(out.pooler_output)),
        ):
            handle = module.register_forward_hook(lambda module, args, out, capture=capture: capture(out))
            hooks.callback(handle.remove)
        weighed = [term for term, weight in GUIDANCE_TERMS.items() if getattr(weights, weight)]
        guide = hooks.enter_context(LookupGuide(loaded, weighed)) if weights.guided else None
        for group in micro_batches(examples, max_tokens):
            merged.clear()
            emitted.clear()
            batch = collate(group, loaded.tokenizer.pad_token_id)
            visual_targets = batch.pop("visual_targets", None)
            per_answer = {name: batch.pop(name) for name in ANSWER_GUIDANCE if name in batch}
            token_loss, rows, targets = answer_token_losses(loaded, batch)
            loss = token_loss.sum() / total_tokens
            share = len(group) / len(examples)
            if weights.visual_mean_penalty and merged:
                common = torch.cat(merged).mean(dim=0)
                loss = loss + weights.visual_mean_penalty * common.pow(2).mean() * share
            for name, weight, losses in (
                ("(recognition)", weights.recognition, recognition_token_losses),
                ("(position)", weights.position, position_token_losses),
                ("(coordinates)", weights.coordinates, coordinate_token_losses),
            ):
                if weight and visual_targets is not None and emitted:
                    extra = losses(loaded, emitted[0], visual_targets)
                    if extra.numel():
                        loss = loss + weight * extra.mean() * share
                        per_label[name][0] += float(extra.detach().sum())
                        per_label[name][1] += extra.numel()
            if guide is not None:
                for term, extra in guide.losses(batch, visual_targets, targets, **per_answer).items():
                    name, weight = f"({term})", getattr(weights, GUIDANCE_TERMS[term])
                    if weight and extra.numel():
                        loss = loss + weight * extra.mean() * share
                        per_label[name][0] += float(extra.detach().sum())
                        per_label[name][1] += extra.numel()
            loss.backward()
            is_answer = targets != loaded.tokenizer.eos_token_id
            step_loss += _accumulate(per_label, group, token_loss, rows, is_answer, total_tokens)
    return step_loss, {label: round(s / n, 4) for label, (s, n) in sorted(per_label.items())}


def _accumulate(
    per_label: dict[str, list[float]],
    group: Sequence[Example],
    token_loss: torch.Tensor,
    rows: torch.Tensor,
    is_answer: torch.Tensor,
    total: int,
) -> float:
    """Add a micro-batch's answer-token losses to the per-label sums; return its share of the step's mean loss."""
    values = token_loss.detach().cpu()
    keep = is_answer.cpu()
    for row, value in zip(rows[keep].tolist(), values[keep].tolist(), strict=True):
        acc = per_label[group[row].label]
        acc[0] += value
        acc[1] += 1
    return float(values.sum()) / total


def answer_token_losses(
    loaded: LoadedModel, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy of each supervised token, the batch row it belongs to, and its target id.

    The output projection runs only on the positions that predict a label, not on every prompt and image
    position.
    """
    batch = {k: v.to(loaded.model.device) for k, v in batch.items()}
    labels = batch.pop("labels")
    hidden = loaded.model.model(**batch, use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    logits = loaded.model.lm_head(hidden[:, :-1][mask])
    rows = torch.nonzero(mask)[:, 0]
    chosen = targets[mask]
    return torch.nn.functional.cross_entropy(logits, chosen, reduction="none"), rows, chosen


def load_initial_weights(loaded: LoadedModel, directory: str) -> None:
    """Copy the weights of the trained model in ``directory`` into ``loaded`` (same architecture and tokenizer)."""
    from hybridkv.models import load_model

    if not (Path(directory) / "config.json").is_file():
        raise ConfigError(f"--init {directory} is not a model directory (no config.json); give a run's output folder")
    trained = load_model(directory)
    if trained.tokenizer.get_vocab() != loaded.tokenizer.get_vocab():
        raise ConfigError(f"--init {directory} was trained with another tokenizer; retrain it with this version")
    loaded.model.load_state_dict(trained.model.state_dict())


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only; norms, biases and the (tied) embedding are left alone."""
    decay, keep = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 and "embed_tokens" not in name else keep).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def _report(write: Callable[[str], None], log: _Log, step: int, results: dict[str, TaskResult]) -> None:
    accuracy = {task: round(r.accuracy, 4) for task, r in results.items()}
    log.write({"step": step, "eval": accuracy, "items": {t: r.total for t, r in results.items()}})
    write(f"step {step} validation exact match: " + ", ".join(f"{t} {a:.2f}" for t, a in accuracy.items()))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        hybridkv_version = version("hybridkv")
    except PackageNotFoundError:
        hybridkv_version = "unknown"
    return {
        "hybridkv": hybridkv_version,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def _settings_changes(log_path: Path) -> list[dict[str, Any]]:
    """The log's record of settings changed at resumes: ``{"step", "changed": {name: [before, after]}}``."""
    records = (json.loads(line) for line in log_path.read_text().splitlines() if '"settings_changed"' in line)
    at_step = {r["step"]: r["settings_changed"] for r in records}  # a resume redone from the same step wins
    return [{"step": step, "changed": changed} for step, changed in sorted(at_step.items())]


class _Log:
    """Append-only JSONL; on resume, records after the checkpoint's step are dropped (they are redone)."""

    def __init__(self, path: Path, keep_through: int) -> None:
        self.path = path
        if path.exists():
            kept = [line for line in path.read_text().splitlines() if _step_of(line) <= keep_through]
            path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # an unreadable line is dropped
