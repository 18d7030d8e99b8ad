"""Offline loading: tiny random models by name, hub-like checkpoint directories, cached hub ids, images."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
import transformers
from PIL import Image, UnidentifiedImageError
from transformers import AutoConfig, AutoTokenizer

from hybridkv.defaults import EMBEDDED_DIR, EMBEDDED_MODEL
from hybridkv.errors import InputError, ModelLoadError
from hybridkv.models.base import LoadedModel, ModelAdapter
from hybridkv.models.registry import get_adapter
from hybridkv.models.smollm2 import SMOLLM2_NAME, smollm2_dir
from hybridkv.models.tiny import TINY_PREFIX, tiny_random_model

# PIL's own decompression-bomb threshold (~89.5 MP); anything larger is refused, not just warned about.
MAX_IMAGE_PIXELS = 89_478_485

_HOW = (
    "pass a checkpoint directory (config.json + safetensors + tokenizer), "
    "a hub id already in the local cache, 'embedded', 'smollm2' or tiny-random-<family>"
)


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Load a model with its tokenizer/processor, fully offline, in eval mode with sdpa attention."""
    name = os.fspath(name_or_path)
    if name == EMBEDDED_MODEL:
        if not (EMBEDDED_DIR / "config.json").is_file():
            raise ModelLoadError(
                "the embedded model's weights are missing from this installation; reinstall hybridkv, or "
                f"train them with scripts/train_tiny_vlm.py and copy the run into {EMBEDDED_DIR}"
            )
        return _load_directory(EMBEDDED_DIR, EMBEDDED_MODEL, dtype, device)
    if name == SMOLLM2_NAME:
        return _load_directory(smollm2_dir(), SMOLLM2_NAME, dtype, device)
    if name.startswith(TINY_PREFIX):
        loaded = tiny_random_model(name[len(TINY_PREFIX) :])
        loaded.model.to(device=device, dtype=dtype)
        return loaded
    path = Path(name).expanduser()
    if path.is_dir():
        return _load_directory(path, name, dtype, device)
    if path.exists() or _looks_like_path(name):
        raise ModelLoadError(f"{name} is not a model directory; {_HOW}")
    return _load_directory(_cached_snapshot(name), name, dtype, device)


def save_pretrained_dir(loaded: LoadedModel, directory: str | os.PathLike[str]) -> None:
    """Write a hub-like checkpoint (safetensors, config, tokenizer, processor, template) for load_model."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(out)
    (loaded.processor if loaded.processor is not None else loaded.tokenizer).save_pretrained(out)


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file as RGB, refusing missing files, non-images and decompression bombs."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"image {p} does not exist; pass the path of a PNG or JPEG file")
    too_large = f"image {p} is over the {MAX_IMAGE_PIXELS:,} px limit; downscale it first"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:  # reads the header only
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise Image.DecompressionBombError(too_large)
                return img.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(too_large) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{p} is not a readable image ({type(exc).__name__}); pass a PNG or JPEG file") from exc


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else is meant as a filesystem path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _cached_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as exc:  # validation, not-cached and offline errors all mean "not available here"
        raise ModelLoadError(
            f"{repo_id!r} is not in the local Hugging Face cache (nothing is downloaded); {_HOW}"
        ) from exc


def _adapter_for_directory(path: Path) -> ModelAdapter:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"{path} has no config.json; {_HOW}")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelLoadError(f"{config_file} is not a valid JSON config; re-save the checkpoint") from exc
    if not model_type:
        raise ModelLoadError(f"{config_file} has no model_type; re-save the checkpoint with transformers")
    return get_adapter(model_type)


def _load_directory(path: Path, name: str, dtype: torch.dtype, device: str | torch.device) -> LoadedModel:
    adapter = _adapter_for_directory(path)
    model_cls = getattr(transformers, adapter.model_class)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        model = model_cls.from_pretrained(
            path, config=config, dtype=dtype, attn_implementation="sdpa", local_files_only=True
        )
        if adapter.processor_class is not None:
            processor = adapter.processor_class.from_pretrained(path, local_files_only=True)
            tokenizer = processor.tokenizer
        else:
            processor = None
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(f"could not load {name} from {path}: {detail}; {_HOW}") from exc
    model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, processor=processor, adapter=adapter, name=name)
