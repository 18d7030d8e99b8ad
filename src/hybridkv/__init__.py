"""hybridkv: hybrid KV cache compression for multimodal LLMs."""

__version__ = "0.1.0"
