"""Defaults shared by every command (kept import-light so `--help` stays fast)."""

DEFAULT_MODEL = "tiny-random-qwen2_5_vl"
"""The model commands use without --model, until the trained embedded model ships."""
