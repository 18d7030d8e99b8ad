"""The embedded model: a small Qwen2.5-VL trained by hybridkv on its own task suite, on CPU.

It ships with the package so that demos and accuracy-vs-KV-budget curves run offline on a real
(trained) model. This package defines it (architecture, tokenizer, processor), builds it untrained,
loads the shipped weights, and holds what ``scripts/train_tiny_vlm.py`` trains it with.
"""

from hybridkv.embedded.config import embedded_config
from hybridkv.embedded.model import (
    ASSET_DIR,
    build_untrained,
    item_images,
    load_embedded,
    visual_token_count,
)
from hybridkv.embedded.processor import embedded_processor
from hybridkv.embedded.tokenizer import embedded_tokenizer

__all__ = [
    "ASSET_DIR",
    "build_untrained",
    "embedded_config",
    "embedded_processor",
    "embedded_tokenizer",
    "item_images",
    "load_embedded",
    "visual_token_count",
]
