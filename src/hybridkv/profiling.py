"""The calibration pass that measures a HeadProfile.

Each calibration input is run twice, one prompt at a time (no padding, so nothing depends on the
batch):

1. **Scores and online types.** A HybridKV cache at budget 1.0 prefills the prompt exactly as
   ``hybridkv.generation.generate`` would, and the per-head scores and types are read back from
   ``cache.stats().heads``. The profile's score is therefore the very one the cache classifies with,
   not a re-implementation. Classification happens at prefill, so one generated token suffices.
2. **Stability of the visual focus.** The stock cache decodes ``decode_steps`` more tokens while a
   probe attention function (stock sdpa for the output) also computes, for each one-token decode
   query, its softmax over the prompt's keys, averaged over the query heads of each KV group (as the
   classifier averages the window). Only decode rows are computed, so no L x L map is ever built,
   unlike ``output_attentions`` with eager attention, which would materialise every layer's full
   prefill map. The top-k visual positions of consecutive steps are compared by Jaccard overlap.

Calibration inputs come from the embedded task suite (validation split, round-robin over tasks) or
from a JSONL file of ``{"prompt": ..., "images": [paths]}`` records.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .config import config_default
from .errors import CacheStateError, ConfigError, InputError
from .profile import HeadProfile, current_library_version, model_fingerprint
from .token_types import TokenType

PROBE_IMPLEMENTATION = "hybridkv_profile_probe"
PROBE_KWARG = "hybridkv_profile_probe"
SUITE = "suite"
DEFAULT_SPLIT = "validation"


@dataclass(frozen=True)
class CalibItem:
    """One calibration input: a prompt and its images (video frames are passed as images)."""

    prompt: str
    images: tuple[Image.Image, ...] = ()
    id: str = ""
    task: str = ""


def as_calib_item(item: Any) -> CalibItem:
    """A CalibItem from a CalibItem, a suite TaskItem or an evaluation EvalItem.

    The model processors here are image-only, so a video item's frames follow its images as images
    (an EvalItem already holds them so).
    """
    if isinstance(item, CalibItem):
        return item
    try:
        images = tuple(item.images) + tuple(getattr(item, "video", None) or ())
        return CalibItem(prompt=item.prompt, images=images, id=str(item.id), task=str(item.task))
    except AttributeError:
        raise InputError(
            f"calibration item {type(item).__name__} has no prompt/images; pass CalibItem or hybridkv.data TaskItem"
        ) from None


# ---------------------------------------------------------------------------------------------- sources


def suite_items(
    samples: int, *, split: str = DEFAULT_SPLIT, tasks: Sequence[str] | None = None, seed: int = 0
) -> Iterator[CalibItem]:
    """``samples`` items, round-robin over tasks (the suite's by default, or any evaluation task, such as the
    long-context ``needle_2k``), suite items rendered lazily."""
    from .data import TASKS

    chosen = tuple(tasks) if tasks else TASKS
    per_task = [samples // len(chosen) + (i < samples % len(chosen)) for i in range(len(chosen))]
    streams = [_task_items(task, split, n, seed) for task, n in zip(chosen, per_task, strict=True)]
    for _ in range(max(per_task, default=0)):
        for stream in streams:
            item = next(stream, None)
            if item is not None:
                yield as_calib_item(item)


def jsonl_items(path: str | os.PathLike[str]) -> list[CalibItem]:
    """Records ``{"prompt": str, "images": [paths], "video": [frame paths]?, "id"?, "task"?}``, one a line.

    Relative image paths are resolved against the file's folder; ``hybridkv.data.export_jsonl`` output
    (items.jsonl, or its folder) reads as is. Every image is opened here, so a bad one fails before any
    model work.
    """
    from .data.frames import as_clip
    from .models import load_image

    manifest = Path(path)
    if manifest.is_dir():
        manifest = manifest / "items.jsonl"
    if not manifest.is_file():
        raise InputError(f'no calibration file at {manifest}; pass a JSONL file of {{"prompt", "images"}} records')
    items: list[CalibItem] = []
    with manifest.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{manifest}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc.msg}); write one JSON object per line") from None
            if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
                raise InputError(f'{where}: needs a "prompt" string; write {{"prompt": ..., "images": [...]}}')
            paths = {}
            for key in ("images", "video"):
                value = record.get(key) or []
                if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                    raise InputError(f'{where}: "{key}" must be a list of image paths')
                paths[key] = value
            if not record["prompt"].strip() and not any(paths.values()):
                raise InputError(f"{where}: empty prompt and no images; give each line a prompt")
            images = tuple(load_image(manifest.parent / p) for p in paths["images"])
            images += as_clip(load_image(manifest.parent / p) for p in paths["video"])
            items.append(
                CalibItem(
                    prompt=record["prompt"],
                    images=images,
                    id=str(record.get("id", f"{manifest.name}:{number}")),
                    task=str(record.get("task", "")),
                )
            )
    if not items:
        raise InputError(f'{manifest} holds no records; add one {{"prompt", "images"}} object per line')
    return items


def _task_items(task: str, split: str, n: int, seed: int) -> Iterator[Any]:
    from .data import TASKS, iter_suite

    if task in TASKS:
        return iter_suite(split, n, tasks=[task], seed=seed)
    from .eval.tasks import get_task

    return iter(get_task(task).items(split, n, seed=seed))


def calib_source(
    source: str, *, samples: int, split: str = DEFAULT_SPLIT, seed: int = 0
) -> tuple[Iterable[CalibItem], int, dict[str, Any]]:
    """Resolve ``--calib``: ``suite``, ``suite:task1,task2``, or a JSONL file (or a folder with items.jsonl).

    Returns the items, how many there are, and the record of the source kept in the profile.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be an int >= 1, got {samples!r}")
    if source == SUITE or source.startswith(SUITE + ":"):
        from .data import TASKS
        from .eval.tasks import eval_tasks

        tasks = [t for t in source.partition(":")[2].split(",") if t.strip()]
        tasks = [t.strip() for t in tasks]
        unknown = [t for t in tasks if t not in eval_tasks()]
        if unknown:
            raise ConfigError(f"unknown task(s) {', '.join(unknown)}; known tasks: {', '.join(eval_tasks())}")
        chosen = tasks or list(TASKS)
        calib = {"source": SUITE, "split": split, "seed": seed, "tasks": chosen, "samples": samples}
        return suite_items(samples, split=split, tasks=chosen, seed=seed), samples, calib
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(
            f"--calib {source!r} is neither 'suite' (or 'suite:task,...') nor an existing JSONL file; pass one of those"
        )
    items = jsonl_items(path)[:samples]
    tasks = sorted({i.task for i in items if i.task})
    calib = {"source": str(path), "split": None, "seed": None, "tasks": tasks, "samples": len(items)}
    return items, len(items), calib


# ---------------------------------------------------------------------------------------------- decode probe


@dataclass
class _DecodeProbe:
    """Collects, per layer, each decode step's group-averaged attention over the prompt's keys."""

    prompt_len: int
    steps: dict[int, list[torch.Tensor]] = field(default_factory=dict)

    def record(
        self, layer: int, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float
    ) -> None:
        b, hq, q, d = query.shape
        hkv = key.shape[1]
        logits = torch.matmul(query.float().reshape(b, hkv, (hq // hkv) * q, d), key.float().transpose(-1, -2))
        logits = logits * scaling
        if mask is not None:
            mask = mask[:, :, -q:, : key.shape[-2]]
            if mask.dtype == torch.bool:
                logits = logits.masked_fill(~mask, float("-inf"))
            else:
                logits = logits + mask.float()
        probs = torch.softmax(logits, dim=-1).mean(2)  # [B, H_kv, K]
        self.steps.setdefault(layer, []).append(probs[0, :, : self.prompt_len].cpu())


def _probe_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Stock sdpa; on a one-token decode query it also hands the query's attention to the probe."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    probe: _DecodeProbe | None = kwargs.pop(PROBE_KWARG, None)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    out = sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    if probe is not None and query.shape[-2] == 1 and key.shape[-2] > probe.prompt_len:
        probe.record(module.layer_idx, query, key, attention_mask, scaling)
    return out


def _inject_probe(probe: _DecodeProbe):
    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        kwargs[PROBE_KWARG] = probe
        return args, kwargs

    return hook


def _probed(model: Any, adapter: Any, probe: _DecodeProbe) -> AbstractContextManager[Any]:
    """Route the language model's attention through the probe; restore implementation and hooks after."""
    from .attention import routed_attention

    return routed_attention(model, adapter, PROBE_IMPLEMENTATION, _probe_attention, _inject_probe(probe))


def decode_attention(loaded: Any, inputs: Any, *, steps: int) -> torch.Tensor:
    """[steps, layers, kv_heads, prompt_len]: attention of the first ``steps`` decode queries over the prompt.

    Greedy decoding with the stock cache; each step's query heads are softmaxed and averaged per KV group.
    Fewer steps come back only if generation cannot continue (a model without an EOS-free path).
    """
    model = loaded.model
    prompt_len = int(inputs["input_ids"].shape[1])
    probe = _DecodeProbe(prompt_len=prompt_len)
    new = steps + 1  # the first token comes from prefill; the next `steps` tokens are decode forwards
    with _probed(model, loaded.adapter, probe), torch.inference_mode():
        model.generate(**inputs, max_new_tokens=new, min_new_tokens=new, do_sample=False)
    layers = [probe.steps.get(i, []) for i in range(len(loaded.adapter.attention_modules(model)))]
    n = min((len(s) for s in layers), default=0)
    if n == 0:
        return torch.empty(0, len(layers), 0, prompt_len)
    return torch.stack([torch.stack(s[:n]) for s in layers], dim=1)


def visual_topk_overlap(attn: torch.Tensor, visual: torch.Tensor, top_k: int) -> torch.Tensor:
    """[layers, kv_heads] mean Jaccard overlap of the top-k visual positions between consecutive steps.

    ``attn``: [steps, layers, kv_heads, L]; ``visual``: [L] bool. k is ``min(top_k, n_visual // 2)`` (at
    least 1), so the sets never cover every visual token (which would make the overlap trivially 1).
    NaN where there are no visual tokens or fewer than two steps.
    """
    steps, layers, hkv, _ = attn.shape
    n_vis = int(visual.sum())
    if n_vis == 0 or steps < 2:
        return torch.full((layers, hkv), math.nan)
    k = min(top_k, max(1, n_vis // 2))
    vis = attn[..., visual]  # [steps, layers, H, n_vis]
    picked = torch.zeros_like(vis, dtype=torch.bool)
    picked.scatter_(-1, vis.topk(k, dim=-1).indices, True)
    inter = (picked[1:] & picked[:-1]).sum(-1).float()
    union = (picked[1:] | picked[:-1]).sum(-1).float()
    return (inter / union).mean(0)


def visual_attention_share(attn: torch.Tensor, visual: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """[layers, kv_heads] mean over decode steps of the attention share on visual prompt tokens.

    ``attn``: [steps, layers, kv_heads, L] (each step's softmax restricted to the prompt); ``visual``: [L] bool.
    NaN (shape ``shape``) when no step was recorded.
    """
    if attn.shape[0] == 0:
        return torch.full(shape, math.nan)
    return attn[..., visual].sum(-1).mean(0)


# ---------------------------------------------------------------------------------------------- the pass


def _online_scores(loaded: Any, inputs: Any, method: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """[layers, kv_heads] score and static flag of one prompt, read from the HybridKV cache's own stats."""
    model = loaded.model
    with method(model):
        cache = method.make_cache(model, inputs)
        with torch.inference_mode():
            model.generate(**inputs, past_key_values=cache, max_new_tokens=1, do_sample=False)
    heads = cache.stats().heads
    if len(heads) != len(cache.layers):
        raise CacheStateError(
            f"only {len(heads)} of {len(cache.layers)} layers classified their heads; "
            "profile a model whose every layer runs the hybridkv attention"
        )
    scores = torch.tensor([layer.scores[0] for layer in heads], dtype=torch.float64)
    static = torch.tensor([layer.static[0] for layer in heads], dtype=torch.bool)
    return scores, static


def profile_model(
    loaded: Any,
    items: Iterable[Any],
    *,
    score: str = config_default("score"),
    theta: float = config_default("theta"),
    window: int = config_default("window"),
    score_top_ratio: float = config_default("score_top_ratio"),
    decode_steps: int = 4,
    top_k: int = 16,
    calib: dict[str, Any] | None = None,
) -> HeadProfile:
    """Measure a HeadProfile of ``loaded`` over calibration ``items`` (CalibItem or TaskItem).

    ``decode_steps`` (>= 2) decode queries are compared for the top-k overlap. ``calib`` describes the
    source (see :func:`calib_source`); its sample count and tasks are filled in from the items seen.
    A text-only model gets the prompts without their images (its overlap is then NaN).
    """
    from .methods import HybridKV

    if isinstance(decode_steps, bool) or not isinstance(decode_steps, int) or decode_steps < 2:
        raise ConfigError(f"decode_steps must be an int >= 2 (overlap compares consecutive steps), got {decode_steps}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be an int >= 1, got {top_k!r}")
    method = HybridKV(budget=1.0, score=score, theta=theta, window=window, score_top_ratio=score_top_ratio)
    multimodal = loaded.adapter.is_multimodal
    all_scores, all_static, all_overlap, all_visual, ids, tasks = [], [], [], [], [], []
    for raw in items:
        item = as_calib_item(raw)
        images = list(item.images) if multimodal else []
        inputs = loaded.build_inputs(item.prompt, images or None)
        scores, static = _online_scores(loaded, inputs, method)
        visual = (loaded.token_types(inputs)[0] != int(TokenType.TEXT)).cpu()
        if bool(visual.any()):
            attn = decode_attention(loaded, inputs, steps=decode_steps)
            overlap = visual_topk_overlap(attn, visual, top_k)
            visual_mass = visual_attention_share(attn, visual, scores.shape)
        else:
            overlap = torch.full(scores.shape, math.nan)
            visual_mass = torch.full(scores.shape, math.nan)
        all_scores.append(scores)
        all_static.append(static)
        all_overlap.append(overlap.float())
        all_visual.append(visual_mass.float())
        ids.append(item.id)
        if item.task:
            tasks.append(item.task)
    if not all_scores:
        raise InputError("no calibration inputs; pass --samples >= 1 or a JSONL file with at least one record")
    s = torch.stack(all_scores)  # [N, layers, H]
    st = torch.stack(all_static)
    ov = torch.stack(all_overlap)
    rate = st.double().mean(0)
    record = dict(calib or {"source": "items"})
    record["samples"] = len(all_scores)
    record.setdefault("seed", None)
    record["tasks"] = record.get("tasks") or sorted(set(tasks))
    record["ids"] = ids
    record["images"] = "as given" if multimodal else "dropped (text-only model)"
    return HeadProfile(
        fingerprint=model_fingerprint(loaded.model),
        score_name=score,
        theta=float(theta),
        score_mean=s.mean(0).float(),
        score_var=s.var(0, correction=0).float(),
        static_rate=rate.float(),
        flip_rate=(2.0 * torch.minimum(rate, 1.0 - rate)).float(),
        topk_overlap=ov.nanmean(0).float(),
        calib=record,
        library_version=current_library_version(),
        options={"window": window, "score_top_ratio": score_top_ratio, "decode_steps": decode_steps, "top_k": top_k},
        input_scores=s.float(),
        input_static=st,
        input_overlap=ov,
        visual_mass=torch.stack(all_visual).nanmean(0).float(),
    )
