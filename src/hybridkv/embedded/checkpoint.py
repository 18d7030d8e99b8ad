"""Resumable training state on disk, without pickle.

A checkpoint directory holds ``model.safetensors`` (weights), ``optimizer.safetensors`` (AdamW's
moments and step counts, plus the torch RNG state as a byte tensor) and ``state.json`` (step, elapsed
time, the run's settings). Nothing is ever unpickled, so a checkpoint from elsewhere cannot run code.
A new checkpoint is written next to the old one and swapped in by rename, so an interrupted save
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from hybridkv.errors import ConfigError

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
FORMAT = "hybridkv.embedded.checkpoint/1"
_RNG_KEY = "rng.torch"


@dataclass(frozen=True)
class Resumed:
    """What a checkpoint restores besides the tensors it loads in place."""

    step: int
    elapsed_seconds: float
    settings: dict[str, Any]


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    step: int,
    elapsed_seconds: float,
    settings: dict[str, Any],
) -> Path:
    """Write the training state after ``step`` completed steps; returns the checkpoint directory."""
    final = Path(directory)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / MODEL_FILE))  # handles the tied input/output embedding
    tensors, groups = _optimizer_tensors(optimizer)
    tensors[_RNG_KEY] = torch.get_rng_state()
    save_file(tensors, str(tmp / OPTIMIZER_FILE))
    state = {
        "format": FORMAT,
        "step": step,
        "elapsed_seconds": elapsed_seconds,
        "settings": settings,
        "param_groups": groups,
    }
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """``state.json`` of a checkpoint, or a ConfigError saying why it cannot be resumed from."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {Path(directory)} (missing {STATE_FILE}); start without --resume")
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable JSON ({exc}); delete the checkpoint or restart") from exc
    if state.get("format") != FORMAT:
        raise ConfigError(f"{path} has format {state.get('format')!r}, not {FORMAT!r}; restart the run")
    return state


def load_checkpoint(
    directory: str | os.PathLike[str], model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> Resumed:
    """Load weights, optimizer state and RNG state in place; return the step and settings to resume."""
    state = read_state(directory)
    root = Path(directory)
    missing, unexpected = load_model(model, str(root / MODEL_FILE), strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"checkpoint {root} does not fit this model ({len(missing)} missing, {len(unexpected)} unexpected "
            "tensors); it was written by another architecture, restart without --resume"
        )
    tensors = load_file(str(root / OPTIMIZER_FILE))
    torch.set_rng_state(tensors.pop(_RNG_KEY))
    optimizer.load_state_dict(_optimizer_state(optimizer, tensors, state["param_groups"]))
    return Resumed(step=int(state["step"]), elapsed_seconds=float(state["elapsed_seconds"]), settings=state["settings"])


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Per-parameter state as flat ``state.<index>.<key>`` tensors, and the groups' hyperparameters as JSON."""
    sd = optimizer.state_dict()
    tensors = {
        f"state.{index}.{key}": value.detach().cpu().clone().contiguous()
        for index, entry in sd["state"].items()
        for key, value in entry.items()
        if isinstance(value, torch.Tensor)
    }
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in group.items()} for group in sd["param_groups"]]
    return tensors, groups


def _optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]
) -> dict[str, Any]:
    fresh = optimizer.state_dict()["param_groups"]
    if [g["params"] for g in groups] != [g["params"] for g in fresh]:
        raise ConfigError("the checkpoint's optimizer groups do not match this model; restart without --resume")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    restored = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in groups]
    return {"state": state, "param_groups": restored}
