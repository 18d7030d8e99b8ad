"""The shipped embedded model: it loads offline by name, answers held-out items, and its card is honest."""

from __future__ import annotations

import time

import pytest

from hybridkv.data import generate_items, score
from hybridkv.defaults import DEFAULT_MODEL, EMBEDDED_DIR, EMBEDDED_MODEL, FALLBACK_MODEL
from hybridkv.embedded.card import model_card, quality_checks, training_commands
from hybridkv.errors import ModelLoadError
from hybridkv.eval.summary import SummaryRow
from hybridkv.generation import generation_record
from hybridkv.methods import get_method
from hybridkv.models import load_model

shipped = pytest.mark.skipif(not (EMBEDDED_DIR / "config.json").is_file(), reason="embedded weights not shipped")


def _row(method: str, budget: float | None, accuracy: dict[str, float]) -> SummaryRow:
    return SummaryRow(
        method=method,
        budget=budget,
        items=10,
        correct=0,
        accuracy=accuracy,
        mean_accuracy=sum(accuracy.values()) / len(accuracy),
        kv_hot_bytes=1.0,
        kv_cold_bytes=0.0,
        full_kv_bytes=1.0,
        hot_ratio=1.0,
        prefill_s=None,
        decode_ms_per_token=None,
        static_fraction=None,
    )


def test_card_states_each_bar_with_its_measurement():
    rows = [
        _row("full", None, {"grid": 0.95, "counting": 0.85, "multi_image": 1.0}),
        _row("streaming", 0.1, {"grid": 0.3, "counting": 0.8, "multi_image": 0.9}),
    ]
    checks = quality_checks(rows)
    assert checks["full_cache"]["grid"]["passes"] and not checks["full_cache"]["counting"]["passes"]
    assert checks["streaming_drop"]["grid"]["passes"] and not checks["streaming_drop"]["multi_image"]["passes"]
    assert "counting" not in checks["streaming_drop"]  # not a visual-lookup task
    card = model_card(
        {"steps": 10, "seconds": 600, "threads": 2, "seed": 0, "settings": {"batch_size": 4, "lr": 1e-3}},
        rows,
        items_per_task=10,
        parameters=5_000_000,
        weights_bytes=20 * 2**20,
        eval_command="hybridkv eval",
    )
    assert "| full | - | 95.0 | 85.0 | 100.0 |" in card
    assert "counting: full cache 85.0% **misses**" in card and "grid: full cache 95.0% meets" in card
    assert "multi_image: StreamingLLM at 0.1 loses 10.0 points, **misses**" in card


def test_card_reproduces_a_staged_run_command_by_command():
    training = {
        "settings": {"steps": 3000, "lookup_loss": 1.0, "word_code_loss": 0.5, "lr": 0.001, "tasks": ["grid", "video"]},
        "settings_changes": [
            {"step": 900, "changed": {"word_code_loss": [0.0, 1.0]}},
            {"step": 1300, "changed": {"word_code_loss": [1.0, 0.5], "steps": [2000, 3000]}},
        ],
    }
    first, second, third = training_commands(training, out="runs/x")
    assert first == (
        "python scripts/train_tiny_vlm.py --out runs/x --lookup-loss 1 --steps 2000 --tasks grid,video --stop-after 900"
    )  # default lr and the zero word-code weight it started with need no flag
    assert second == "python scripts/train_tiny_vlm.py --out runs/x --resume --word-code-loss 1 --stop-after 1300"
    assert third == "python scripts/train_tiny_vlm.py --out runs/x --resume --steps 3000 --word-code-loss 0.5"
    assert training_commands({"settings": {"steps": 6000}}) == ["python scripts/train_tiny_vlm.py --out runs/embedded"]
    stopped = {"settings": {"steps": 6000}, "completed": False, "steps": 2800}  # stopped before its schedule ended
    assert training_commands(stopped) == ["python scripts/train_tiny_vlm.py --out runs/embedded --stop-after 2800"]
    second_stage = {
        "settings": {"steps": 700, "init": "runs/somewhere", "mixture": "weak-tasks"},
        "init_training": stopped,
    }
    assert training_commands(second_stage) == [
        "python scripts/train_tiny_vlm.py --out runs/embedded-stage1 --stop-after 2800",
        "python scripts/train_tiny_vlm.py --out runs/embedded --init runs/embedded-stage1 --mixture weak-tasks "
        "--steps 700",
    ]
    card = model_card(
        {**second_stage, "steps": 700, "seconds": 60},
        [],
        items_per_task=1,
        parameters=1,
        weights_bytes=1,
        eval_command="x",
    )
    assert "Stage 1 of 2: 2800 optimizer steps" in card and "Stage 2 of 2: from the previous stage's weights" in card
    switched = {**second_stage, "settings": {**second_stage["settings"], "frame_pairs": True, "tasks": ["video"]}}
    (command,) = training_commands(switched)[-1:]
    assert " --frame-pairs " in command + " " and "--frame-pairs True" not in command and "--tasks video" in command
    assert "--count-words" not in command  # a switch left off is not written
    card = model_card(switched, [], items_per_task=1, parameters=1, weights_bytes=1, eval_command="x")
    assert "task mixture `weak-tasks`, only `video`" in card


def test_embedded_is_the_default_and_a_missing_copy_names_the_fix(monkeypatch, tmp_path):
    assert DEFAULT_MODEL == (EMBEDDED_MODEL if (EMBEDDED_DIR / "config.json").is_file() else FALLBACK_MODEL)
    monkeypatch.setattr("hybridkv.models.loading.EMBEDDED_DIR", tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match="train_tiny_vlm.py"):
        load_model(EMBEDDED_MODEL)


@shipped
def test_shipped_model_loads_fast_and_fits_the_size_limit():
    t0 = time.perf_counter()
    loaded = load_model(EMBEDDED_MODEL)
    assert time.perf_counter() - t0 < 10.0
    assert loaded.adapter.family == "qwen2_5_vl"
    assert sum(f.stat().st_size for f in EMBEDDED_DIR.glob("*.safetensors")) <= 40 * 2**20
    assert (EMBEDDED_DIR / "README.md").is_file()


@shipped
@pytest.mark.parametrize("task", ["grid", "attribute", "text_copy"])
def test_shipped_model_answers_held_out_items_with_the_full_cache(task):
    loaded = load_model(EMBEDDED_MODEL)
    (item,) = generate_items(task, "test", 1)
    images = [*item.images, *(item.video or ())]
    prediction = generation_record(loaded, item.prompt, images, get_method("full"), max_new_tokens=4)["text"]
    assert score(prediction, item.answer), (item.prompt, prediction, item.answer)


def test_demo_runs_on_suite_items_and_prints_expected_answers(capsys):
    from hybridkv.cli import main

    assert main(["demo", "--fast", "--max-new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    for label in ("grid", "multi-image", "long prompt", "expected", "hybridkv", "full", "hybridkv eval"):
        assert label in out, label


@shipped
def test_the_embedded_model_ships_with_its_profile():
    from hybridkv.profile import load_profile

    loaded = load_model(EMBEDDED_MODEL)
    profile = load_profile("embedded", model=loaded.model)  # the fingerprint matches the shipped weights
    method = get_method("hybridkv-profile", budget=0.2, profile="embedded")
    assert method.config.profile.score_name == profile.score_name
