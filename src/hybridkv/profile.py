"""HeadProfile: how each KV head's text-centric score and type behave across a calibration set.

The paper classifies heads online, per input. A profile records, per (layer, KV head), what that
online rule did over many inputs: the score's mean and variance, how often the head came out
static, how often its type flips, and how stable its most-attended visual tokens are over the first
decode steps. That is the evidence for calling a head "static" or "dynamic", and a prior a cache
can use instead of (or next to) the per-input rule.

On disk a profile is two files written side by side, both atomically (temporary name, then
``os.replace``): a JSON manifest (schema version, model fingerprint, options, calibration source)
and a companion safetensors file with the arrays. The manifest is written last and records the
companion's SHA-256, so a reader never pairs a manifest with arrays from another run. Nothing is
pickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .io import atomic_write

SCHEMA_VERSION: int = 1
FORMAT = "hybridkv.profile"
ARRAYS_SUFFIX = ".safetensors"
# Arrays of shape [layers, kv_heads] that every profile has, in file order.
HEAD_ARRAYS: tuple[str, ...] = ("score_mean", "score_var", "static_rate", "flip_rate", "topk_overlap")
# Arrays of shape [layers, kv_heads] that newer profiles add (None when reading an older file).
OPTIONAL_HEAD_ARRAYS: tuple[str, ...] = ("visual_mass",)
# Per-input arrays of shape [samples, layers, kv_heads], kept for later analysis when present.
INPUT_ARRAYS: tuple[str, ...] = ("input_scores", "input_static", "input_overlap")
_FINGERPRINT_KEYS: tuple[str, ...] = (
    "architecture",
    "model_type",
    "num_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "weights_sha256",
)


class ProfileError(ConfigError):
    """A profile that cannot be used here: unreadable, another schema version, or another model."""


def current_library_version() -> str:
    from . import __version__

    return __version__


def _unwrap(model: Any) -> Any:
    """Accept a LoadedModel (which holds ``.model``) as well as a bare transformers model."""
    return model if hasattr(model, "config") else model.model


def model_fingerprint(model: Any) -> dict[str, Any]:
    """What a profile must match: architecture, attention shape, and a hash of weight names and shapes.

    The hash covers names and shapes only (not values or dtype), so a fine-tune or a bf16 load of the
    same architecture matches, while any change of layout does not.
    """
    model = _unwrap(model)
    config = model.config
    text = config.get_text_config(decoder=True)
    heads = int(text.num_attention_heads)
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}\n".encode())
    architectures = getattr(config, "architectures", None) or [type(model).__name__]
    return {
        "architecture": str(architectures[0]),
        "model_type": str(getattr(config, "model_type", "")),
        "num_layers": int(text.num_hidden_layers),
        "num_attention_heads": heads,
        "num_key_value_heads": int(kv_heads),
        "head_dim": int(head_dim),
        "weights_sha256": digest.hexdigest(),
    }


def describe_fingerprint(fp: dict[str, Any]) -> str:
    """One phrase naming a model's architecture and shapes, for error messages and tables."""
    return (
        f"{fp.get('architecture', '?')} ({fp.get('num_layers', '?')} layers x {fp.get('num_key_value_heads', '?')} "
        f"KV heads, {fp.get('num_attention_heads', '?')} query heads, head_dim {fp.get('head_dim', '?')}, "
        f"weights {str(fp.get('weights_sha256', '?'))[:12]})"
    )


def _same_tensor(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Equality that treats NaN as equal to NaN (overlap is NaN where no visual token was seen)."""
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point():
        nan_a, nan_b = torch.isnan(a), torch.isnan(b)
        return bool(torch.equal(nan_a, nan_b) and torch.equal(a[~nan_a], b[~nan_b]))
    return bool(torch.equal(a, b))


@dataclass(eq=False)
class HeadProfile:
    """Per (layer, KV head) statistics of the online classification over a calibration set.

    Definitions (N calibration inputs, per head):

    * ``score_mean`` / ``score_var``: mean and population variance (ddof 0) of the per-input score;
    * ``static_rate``: share of inputs on which the online rule made the head static (score >= theta);
    * ``flip_rate``: ``2 * min(static_rate, 1 - static_rate)``, in [0, 1]: 0 when the head always gets
      the same type, 1 when it is static on exactly half the inputs;
    * ``topk_overlap``: mean Jaccard overlap of the top-k visual tokens the head attends to between
      consecutive decode steps, averaged over inputs with visual tokens (NaN when none had any);
    * ``visual_mass`` (optional): mean share of the head's attention, over the same decode steps, that lands on
      visual prompt tokens, averaged over inputs with visual tokens (NaN when none had any). The ``profile``
      allocator (``sparsemm``) weighs heads by it.
    """

    fingerprint: dict[str, Any]
    score_name: str
    theta: float
    score_mean: torch.Tensor
    score_var: torch.Tensor
    static_rate: torch.Tensor
    flip_rate: torch.Tensor
    topk_overlap: torch.Tensor
    calib: dict[str, Any]
    library_version: str
    options: dict[str, Any] = field(default_factory=dict)
    """How the statistics were measured: window, score_top_ratio, decode_steps, top_k."""
    input_scores: torch.Tensor | None = None
    """[samples, layers, kv_heads] float32: each input's score (None when not kept)."""
    input_static: torch.Tensor | None = None
    """[samples, layers, kv_heads] bool: each input's online type."""
    input_overlap: torch.Tensor | None = None
    """[samples, layers, kv_heads] float32: each input's top-k overlap (NaN without visual tokens)."""
    visual_mass: torch.Tensor | None = None
    """[layers, kv_heads] float32: mean share of decode attention on visual tokens (None in older profiles)."""

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.fingerprint["num_layers"]), int(self.fingerprint["num_key_value_heads"])

    def static_types(self) -> torch.Tensor:
        """[layers, kv_heads] bool: the profile's fixed types (static where score_mean >= theta)."""
        return self.score_mean >= self.theta

    def check_model(self, model: Any) -> None:
        """Raise ProfileError, naming both models, unless ``model`` is the one this profile measured."""
        mine = self.fingerprint
        theirs = model_fingerprint(model)
        if any(mine.get(k) != theirs.get(k) for k in _FINGERPRINT_KEYS):
            raise ProfileError(
                f"this profile was measured on {describe_fingerprint(mine)} but the model is "
                f"{describe_fingerprint(theirs)}; run `hybridkv profile --model <this model>` to measure it"
            )

    def arrays(self) -> dict[str, torch.Tensor]:
        """The tensors that go into the companion safetensors file."""
        out = {name: getattr(self, name) for name in HEAD_ARRAYS}
        for name in OPTIONAL_HEAD_ARRAYS + INPUT_ARRAYS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to(torch.uint8) if name == "input_static" else value
        return out

    def layer_summary(self) -> list[dict[str, float]]:
        """Per layer: share of heads static in the profile, mean online static rate, score, flip, overlap."""
        types = self.static_types().float()
        rows = []
        for i in range(self.shape[0]):
            overlap = self.topk_overlap[i]
            seen = overlap[~torch.isnan(overlap)]
            rows.append(
                {
                    "layer": i,
                    "static_share": float(types[i].mean()),
                    "static_rate": float(self.static_rate[i].mean()),
                    "score_mean": float(self.score_mean[i].mean()),
                    "score_std": float(self.score_var[i].clamp_min(0).sqrt().mean()),
                    "flip_rate": float(self.flip_rate[i].mean()),
                    "topk_overlap": float(seen.mean()) if seen.numel() else math.nan,
                }
            )
        return rows

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeadProfile):
            return NotImplemented
        plain = ("fingerprint", "score_name", "theta", "calib", "library_version", "options")
        tensors = HEAD_ARRAYS + OPTIONAL_HEAD_ARRAYS + INPUT_ARRAYS
        return all(getattr(self, k) == getattr(other, k) for k in plain) and all(
            _same_tensor(getattr(self, k), getattr(other, k)) for k in tensors
        )

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------- file format


def arrays_path(path: str | os.PathLike[str]) -> Path:
    """The companion safetensors file of a profile manifest (``profile.json`` -> ``profile.safetensors``)."""
    p = Path(path)
    if p.suffix == ARRAYS_SUFFIX:
        raise ProfileError(f"{p} is the arrays file; pass the profile's JSON manifest (e.g. {p.with_suffix('.json')})")
    return p.with_suffix(ARRAYS_SUFFIX)


def _jsonable(value: Any) -> Any:
    """Floats that JSON can hold (NaN and infinities become null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _validate(profile: HeadProfile) -> None:
    missing = [k for k in _FINGERPRINT_KEYS if k not in profile.fingerprint]
    if missing:
        raise ProfileError(f"profile fingerprint lacks {', '.join(missing)}; build it with model_fingerprint(model)")
    layers, kv = profile.shape
    for name in HEAD_ARRAYS + OPTIONAL_HEAD_ARRAYS:
        t = getattr(profile, name)
        if t is None and name in OPTIONAL_HEAD_ARRAYS:
            continue
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (layers, kv):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ProfileError(f"profile array {name} is {got}, expected ({layers}, {kv}) = (layers, KV heads)")
    for name in INPUT_ARRAYS:
        t = getattr(profile, name)
        if t is not None and (t.dim() != 3 or tuple(t.shape[1:]) != (layers, kv)):
            raise ProfileError(f"profile array {name} is {tuple(t.shape)}, expected (samples, {layers}, {kv})")


def save_profile(profile: HeadProfile, path: str | os.PathLike[str]) -> None:
    """Write ``path`` (JSON) and its companion ``.safetensors``, each atomically, arrays first."""
    from safetensors.torch import save as save_tensors

    _validate(profile)
    manifest_path = Path(path)
    companion = arrays_path(manifest_path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in profile.arrays().items()}
    # one metadata key: safetensors orders several in a per-process random order, and the bytes should repeat
    blob = save_tensors(tensors, metadata={"format": f"{FORMAT}/{SCHEMA_VERSION}"})
    manifest = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "library_version": profile.library_version,
        "fingerprint": profile.fingerprint,
        "score": {"name": profile.score_name, "theta": profile.theta},
        "options": profile.options,
        "calib": profile.calib,
        "arrays": {
            "file": companion.name,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "shapes": {k: list(v.shape) for k, v in tensors.items()},
        },
        "summary": {
            "static_share": float(profile.static_types().float().mean()),
            "layers": profile.layer_summary(),
        },
    }
    text = json.dumps(_jsonable(manifest), indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(companion, lambda handle: handle.write(blob))
    atomic_write(manifest_path, lambda handle: handle.write(text.encode("utf-8")))


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ProfileError(f"no profile at {path}; write one with `hybridkv profile --out {path}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{path} is not a readable profile ({type(exc).__name__}); write it again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ProfileError(f"{path} is not a hybridkv profile (format {FORMAT!r} missing); pass a profile's JSON")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ProfileError(
            f"{path} has profile schema version {version} (written by hybridkv "
            f"{manifest.get('library_version', '?')}) but this hybridkv {current_library_version()} reads "
            f"schema version {SCHEMA_VERSION}; run `hybridkv profile` again to re-measure it"
        )
    return manifest


def profile_path(path: str | os.PathLike[str]) -> Path:
    """The file a profile argument names: a path, or ``"embedded"`` for the embedded model's shipped profile."""
    from .defaults import EMBEDDED_DIR, EMBEDDED_MODEL

    return EMBEDDED_DIR / "profile.json" if str(path) == EMBEDDED_MODEL else Path(path)


def load_profile(path: str | os.PathLike[str], *, model: Any = None) -> HeadProfile:
    """Read a profile; check its schema, its companion arrays, and (with ``model``) its fingerprint.

    ``"embedded"`` names the profile shipped with the embedded model."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    manifest_path = profile_path(path)
    manifest = _read_manifest(manifest_path)
    try:
        arrays_info = manifest["arrays"]
        companion = manifest_path.parent / arrays_info["file"]
        if not companion.is_file():
            raise ProfileError(f"{path}'s arrays file {companion} is missing; copy it next to the JSON or re-profile")
        blob = companion.read_bytes()
        if hashlib.sha256(blob).hexdigest() != arrays_info["sha256"]:
            raise ProfileError(
                f"{companion} does not belong to {manifest_path} (checksum differs); re-profile to write both again"
            )
        tensors = load_tensors(blob)
        input_static = tensors.get("input_static")
        profile = HeadProfile(
            fingerprint=dict(manifest["fingerprint"]),
            score_name=str(manifest["score"]["name"]),
            theta=float(manifest["score"]["theta"]),
            **{name: tensors[name] for name in HEAD_ARRAYS},
            calib=dict(manifest["calib"]),
            library_version=str(manifest["library_version"]),
            options=dict(manifest.get("options") or {}),
            input_scores=tensors.get("input_scores"),
            input_static=None if input_static is None else input_static.bool(),
            input_overlap=tensors.get("input_overlap"),
            visual_mass=tensors.get("visual_mass"),
        )
    except (KeyError, TypeError, ValueError, SafetensorError) as exc:
        if isinstance(exc, ProfileError):
            raise
        raise ProfileError(f"{path} is a damaged profile ({type(exc).__name__}: {exc}); re-profile") from None
    _validate(profile)
    if model is not None:
        try:
            profile.check_model(model)
        except ProfileError as exc:
            raise ProfileError(f"{manifest_path}: {exc}") from None
    return profile


# ---------------------------------------------------------------------------------------------- plot


def plot_profile(profile: HeadProfile, path: str | os.PathLike[str]) -> None:
    """Heatmaps (layers x KV heads) of the mean score, the type flip rate and the top-k visual overlap
    (left out when the calibration inputs had no visual tokens, so it is undefined everywhere).

    The score's colour scale is centred on theta (blue below: dynamic, red above: static) and static heads
    are also marked 'S', so the types read at a glance. Uses matplotlib's object API with the Agg canvas
    (no pyplot, no global backend switch); the PNG is written atomically.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import Normalize, TwoSlopeNorm
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("--plot needs matplotlib; install it with `pip install 'matplotlib>=3.8,<4'`") from None

    layers, kv = profile.shape
    static = profile.static_types()
    unit = Normalize(vmin=0.0, vmax=1.0)
    centred = TwoSlopeNorm(vcenter=profile.theta, vmin=0.0, vmax=1.0) if 0.0 < profile.theta < 1.0 else unit
    panels = [
        (f"mean score (S: >= theta {profile.theta:g})", profile.score_mean, "coolwarm", centred),
        ("type flip rate", profile.flip_rate, "magma", unit),
    ]
    if not bool(torch.isnan(profile.topk_overlap).all()):
        panels.append(("top-k visual overlap", profile.topk_overlap, "cividis", unit))
    width = len(panels) * max(2.4, 0.45 * kv + 1.6)
    height = max(2.8, 0.28 * layers + 1.4)
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True)
    font = 8 if layers <= 40 else 5
    for ax, (title, values, cmap, norm) in zip(axes, panels, strict=True):
        data = values.detach().float().cpu().numpy()
        image = ax.imshow(data, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("KV head")
        ax.set_xticks(range(kv))
        fig.colorbar(image, ax=ax, shrink=0.8)
    for i, j in static.nonzero().tolist():
        axes[0].text(j, i, "S", ha="center", va="center", color="black", fontsize=font, fontweight="bold")
    axes[0].set_ylabel("layer")
    name = profile.fingerprint.get("architecture", "model")
    fig.suptitle(f"{name}: {profile.score_name}, {profile.calib.get('samples', '?')} inputs", fontsize=9)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=120))
