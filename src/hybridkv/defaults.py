"""Defaults shared by every command (kept import-light so `--help` stays fast)."""

from pathlib import Path

EMBEDDED_MODEL = "embedded"
"""Name of the model trained by hybridkv and shipped inside the package (``--model embedded``)."""

EMBEDDED_DIR = Path(__file__).resolve().parent / "assets" / "embedded"
"""Where the embedded model's checkpoint (config, safetensors, tokenizer, processor, model card) lives."""

FALLBACK_MODEL = "tiny-random-qwen2_5_vl"
"""What commands use when this installation has no embedded weights (a source checkout before training)."""

DEFAULT_MODEL = EMBEDDED_MODEL if (EMBEDDED_DIR / "config.json").is_file() else FALLBACK_MODEL
"""The model commands use without --model: the embedded model whenever its weights are installed."""

MODEL_HELP = "embedded (shipped model), smollm2 (real text LM), a cached hub id, a local dir, or tiny-random-<family>"
