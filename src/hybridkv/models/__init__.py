"""Model families hybridkv supports: one small adapter each, plus offline loading and tiny random models.

Adapters describe where a family keeps its language model and visual placeholders; the modeling code
itself is stock transformers.
"""

from hybridkv.models.base import LoadedModel, ModelAdapter
from hybridkv.models.loading import load_image, load_model, save_pretrained_dir
from hybridkv.models.registry import FAMILIES, get_adapter
from hybridkv.models.tiny import tiny_random_model

__all__ = [
    "FAMILIES",
    "LoadedModel",
    "ModelAdapter",
    "get_adapter",
    "load_image",
    "load_model",
    "save_pretrained_dir",
    "tiny_random_model",
]
