"""Defaults shared by every command (kept import-light so `--help` stays fast)."""

from pathlib import Path

EMBEDDED_MODEL = "embedded"
"""Name of the model trained by hybridkv and shipped inside the package (``--model embedded``)."""

EMBEDDED_DIR = Path(__file__).resolve().parent / "assets" / "embedded"
"""Where the embedded model's checkpoint (config, safetensors, tokenizer, processor, model card) lives."""

DEFAULT_MODEL = EMBEDDED_MODEL
"""The model commands use without --model."""

MODEL_HELP = "embedded (the shipped model, default), a hub id in the local cache, a local dir, or tiny-random-<family>"
