"""Question-agnostic sessions: compress the context once, ask many questions, each against the same cache."""

from __future__ import annotations

import pytest
import torch

from hybridkv import Session
from hybridkv.data import split_question
from hybridkv.errors import CacheStateError, InputError
from hybridkv.generation import generate
from hybridkv.methods import get_method
from hybridkv.models.testing import synthetic_image


def _aware_tokens(loaded, context, question, images, method):
    inputs = loaded.build_inputs(context + question, images)
    return generate(loaded.model, inputs, method, max_new_tokens=6, min_new_tokens=6).new_tokens


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava_onevision", "qwen3"])
def test_full_cache_session_matches_one_pass_generation(tiny, family):
    loaded = tiny(family)
    images = [synthetic_image(224, 224, seed=5)] if loaded.adapter.is_multimodal else []
    context = "Here is a list: 1. apple 2. river 3. stone."
    questions = [" What is item 2?", " Which item comes last?"]
    with Session(loaded, get_method("full"), context=context, images=images) as chat:
        for question in questions * 2:  # asking again must give the same answer: the question was removed
            answer = chat.ask(question, max_new_tokens=6)
            ref = _aware_tokens(loaded, context, question, images, get_method("full"))
            assert torch.equal(answer.result.new_tokens, ref), question
            assert chat.cache.get_seq_length() == chat.context_tokens


def test_compressed_session_is_exact_at_full_budget_and_repeatable(tiny):
    loaded = tiny("qwen2_5_vl")
    images = [synthetic_image(336, 336, seed=4)]
    full = get_method("full")
    method = get_method("hybridkv", budget=1.0, chunk_size=8, window=8, sinks=2)
    with Session(loaded, full, images=images) as ref_chat, Session(loaded, method, images=images) as chat:
        for question in (" Describe the image.", " What colour dominates?", " Describe the image."):
            ref = ref_chat.ask(question, max_new_tokens=5).result.new_tokens
            assert torch.equal(chat.ask(question, max_new_tokens=5).result.new_tokens, ref)
        assert chat.cache.get_seq_length() == chat.context_tokens
    assert chat.cache is None


def test_compressed_session_saves_memory_and_answers_every_question(tiny):
    loaded = tiny("qwen2_5_vl")
    with Session(loaded, get_method("hybridkv", budget=0.1), images=[synthetic_image(672, 672, seed=2)]) as chat:
        first = chat.ask(" Describe the image.", max_new_tokens=4)
        second = chat.ask(" Describe the image.", max_new_tokens=4)
    assert first.text == second.text
    assert first.result.kv_hot_bytes < 0.25 * first.result.full_kv_bytes
    assert first.question_tokens > 0 and chat.questions_asked == 2


def test_session_misuse_names_the_fix(tiny):
    loaded = tiny("qwen2_5_vl")
    with pytest.raises(InputError, match="context"):
        Session(loaded, get_method("full"), context=" ")
    chat = Session(loaded, get_method("full"), context="Some context.")
    with pytest.raises(CacheStateError, match="not open"):
        chat.ask(" Why?")
    with chat, pytest.raises(InputError, match="question is empty"):
        chat.ask("  ")


def test_compressed_prompt_cannot_be_cropped_into(tiny):
    loaded = tiny("qwen2_5_vl")
    with Session(loaded, get_method("hybridkv", budget=0.5), context="A long enough context. " * 8) as chat:
        with pytest.raises(CacheStateError, match="compressed prompt"):
            chat.cache.crop(-1)


@pytest.mark.parametrize(
    ("prompt", "context", "question"),
    [
        ("A grid. What is in row 1? Answer.", "A grid.", " What is in row 1? Answer."),
        ("A list:\n1. a\n2. b\nWhat is item 1? Answer.", "A list:\n1. a\n2. b\n", "What is item 1? Answer."),
        ("How many blue circles are there? Answer.", "", "How many blue circles are there? Answer."),
    ],
)
def test_split_question_cuts_at_the_sentence_that_asks(prompt, context, question):
    assert split_question(prompt) == (context, question)


def test_a_question_asked_after_compression_retrieves_for_its_last_token(tiny, monkeypatch):
    # the whole question is appended in one forward; the chunks its dynamic heads read are chosen by the
    # position that predicts the answer, not by all the question's tokens at once
    from hybridkv.cache.chunk_store import ChunkStore

    loaded = tiny("qwen2_5_vl")
    seen = []
    select = ChunkStore.select
    monkeypatch.setattr(ChunkStore, "select", lambda self, queries: seen.append(queries.shape) or select(self, queries))
    method = get_method("retrieval-only", budget=0.3)
    with Session(loaded, method, images=[synthetic_image(336, 336, seed=4)]) as chat:
        seen.clear()  # compression picks the first resident chunks by the observation window's queries
        answer = chat.ask(" Which colour is in the top left corner of the image?", max_new_tokens=1)
    config = loaded.model.config.get_text_config()
    per_group = config.num_attention_heads // config.num_key_value_heads
    assert answer.question_tokens > 1 and seen
    assert all(shape[1] == per_group for shape in seen), (seen, per_group)  # one position per KV group


def test_a_text_only_session_after_an_image_prompt_continues_its_own_positions(tiny):
    # Qwen-VL keeps the last prompt's M-RoPE offsets on the model and applies them to cached continuations
    loaded = tiny("qwen2_5_vl")
    context, question = "Here is a list: 1. apple 2. river 3. stone.", " What is item 2?"
    with Session(loaded, get_method("full"), images=[synthetic_image(336, 336, seed=4)]) as chat:
        chat.ask(" Describe the image.", max_new_tokens=2)
    with Session(loaded, get_method("full"), context=context) as chat:
        answer = chat.ask(question, max_new_tokens=6)
    assert torch.equal(answer.result.new_tokens, _aware_tokens(loaded, context, question, [], get_method("full")))
