"""The embedded model's training script: resumable bit-for-bit, loadable output, answer-only loss."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from hybridkv.data import generate_items
from hybridkv.embedded import build_untrained, embedded_tokenizer
from hybridkv.embedded.examples import IGNORE_INDEX, collate, encode, micro_batches
from hybridkv.embedded.mixture import DEFAULT_MIXTURE, draw_items, select
from hybridkv.embedded.schedule import FLOOR, learning_rate
from hybridkv.embedded.training import CHECKPOINT_DIR, LOG_FILE, SUMMARY_FILE
from hybridkv.errors import ConfigError
from hybridkv.models import load_model

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_tiny_vlm.py"
# Cheap tasks (one small image or none) keep a step at a tenth of a second.
TINY_RUN = [
    "--batch-size", "2", "--tasks", "attribute,text_copy", "--threads", "1",
    "--eval-every", "0", "--eval-items", "1", "--final-eval-items", "1", "--checkpoint-every", "3", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_tiny_vlm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _losses(out: Path) -> list[float]:
    records = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


def test_resume_matches_uninterrupted_run_and_output_loads(script, tmp_path):
    threads = torch.get_num_threads()
    try:
        straight = tmp_path / "straight"
        script.main(["--out", str(straight), "--steps", "5", *TINY_RUN])
        resumed = tmp_path / "resumed"
        first = script.main(["--out", str(resumed), "--steps", "5", "--stop-after", "3", *TINY_RUN])
        assert not first.completed and first.steps_done == 3
        assert json.loads((resumed / CHECKPOINT_DIR / "state.json").read_text())["step"] == 3
        second = script.main(["--out", str(resumed), "--resume", *TINY_RUN])
    finally:
        torch.set_num_threads(threads)
    assert second.completed and second.steps_done == 5
    assert len(_losses(straight)) == 5 and all(math.isfinite(x) for x in _losses(straight))
    assert _losses(resumed) == _losses(straight)  # bit-identical, not just close
    a, b = load_model(straight).model.state_dict(), load_model(resumed).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    loaded = load_model(resumed)
    assert loaded.model.config.model_type == "qwen2_5_vl"
    summary = json.loads((resumed / SUMMARY_FILE).read_text())
    assert summary["steps"] == 5 and summary["completed"]
    assert set(summary["validation_accuracy"]) == {"attribute", "text_copy"}
    item = generate_items("attribute", "test", 1)[0]
    inputs = loaded.build_inputs(item.prompt, list(item.images))
    out = loaded.model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_frame_pairs_are_saved_in_the_trained_models_config(script, tmp_path):
    from hybridkv.models.frame_pairs import pairs_frames

    threads = torch.get_num_threads()
    try:
        script.main(["--out", str(tmp_path / "paired"), "--steps", "1", "--frame-pairs", *TINY_RUN])
        script.main(["--out", str(tmp_path / "plain"), "--steps", "1", *TINY_RUN])
    finally:
        torch.set_num_threads(threads)
    assert pairs_frames(load_model(tmp_path / "paired").model.config)  # fed the same way wherever it is loaded
    assert not pairs_frames(load_model(tmp_path / "plain").model.config)


def test_time_budget_stops_cleanly_and_resume_refuses_changed_settings(script, tmp_path):
    threads = torch.get_num_threads()
    try:
        first = script.main(["--out", str(tmp_path), "--steps", "4", "--max-minutes", "0", *TINY_RUN])
        assert not first.completed and first.steps_done == 1  # one step, then the budget is spent
        assert (tmp_path / "config.json").is_file() and (tmp_path / CHECKPOINT_DIR / "state.json").is_file()
        with pytest.raises(ConfigError, match="--lr"):
            script.main(["--out", str(tmp_path), "--lr", "0.5", "--resume", *TINY_RUN])
        # a checkpoint written before a setting existed resumes with that setting's default
        state_path = tmp_path / CHECKPOINT_DIR / "state.json"
        state = json.loads(state_path.read_text())
        del state["settings"]["init"], state["settings"]["position_loss"]
        state_path.write_text(json.dumps(state))
        resumed = script.main(["--out", str(tmp_path), "--resume", "--stop-after", "2", *TINY_RUN])
        assert resumed.steps_done == 2
        # a dense signal's weight may change at a resume (staged guidance); the log records the change
        staged = script.main(
            ["--out", str(tmp_path), "--resume", "--word-code-loss", "0.5", "--stop-after", "3", *TINY_RUN]
        )
        assert staged.steps_done == 3
        records = [json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines()]
        assert {"step": 2, "settings_changed": {"word_code_loss": [0.0, 0.5]}} in records
        state = json.loads(state_path.read_text())
        assert state["settings"]["word_code_loss"] == 0.5
    finally:
        torch.set_num_threads(threads)


def test_labels_cover_only_answer_and_end_of_turn(loaded):
    tok = loaded.tokenizer
    for task in ("grid", "text_copy", "video"):
        item = generate_items(task, "train", 1)[0]
        example = encode(loaded, item)
        supervised = example.labels != IGNORE_INDEX
        answer = tok(item.answer, add_special_tokens=False)["input_ids"]
        assert example.labels[supervised].tolist() == [*answer, tok.eos_token_id]
        # the supervised tokens are the sequence's tail, and the rest is the prompt as build_inputs renders it
        n = len(answer) + 1
        assert supervised[-n:].all() and not supervised[:-n].any()
        assert tok.decode(example.input_ids[-n:]) == item.answer + tok.eos_token
        prompt = loaded.build_inputs(item.prompt, [*item.images, *(item.video or ())])["input_ids"][0]
        assert torch.equal(example.input_ids[:-n], prompt)


def test_per_label_losses_leave_out_end_of_turn(loaded):
    from hybridkv.embedded.training import answer_token_losses, train_step_loss

    tok = loaded.tokenizer
    examples = [encode(loaded, item) for item in generate_items("text_copy", "train", 3, distractor_prob=0.0)]
    torch.manual_seed(0)
    step_loss, per_label = train_step_loss(loaded, examples, max_tokens=4096)
    loaded.model.zero_grad(set_to_none=True)
    with torch.no_grad():
        losses, _, targets = answer_token_losses(loaded, collate(examples, tok.pad_token_id))
    words = targets != tok.eos_token_id
    assert words.sum() == 3 and (~words).sum() == 3  # one word and one end-of-turn per answer
    assert step_loss == pytest.approx(float(losses.mean()), rel=1e-4)  # the optimised loss keeps both
    assert per_label["text_copy"] == pytest.approx(float(losses[words].mean()), abs=1e-4)


def test_collate_left_pads_and_masks_padding(loaded):
    items = [generate_items(t, "train", 1)[0] for t in ("attribute", "text_copy", "counting")]
    examples = [encode(loaded, it) for it in items]
    batch = collate(examples, loaded.tokenizer.pad_token_id)
    width = max(len(e) for e in examples)
    assert batch["input_ids"].shape == batch["labels"].shape == (3, width)
    for row, example in enumerate(examples):
        pad = width - len(example)
        assert (batch["labels"][row, :pad] == IGNORE_INDEX).all()
        assert (batch["attention_mask"][row, :pad] == 0).all() and (batch["attention_mask"][row, pad:] == 1).all()
        assert torch.equal(batch["labels"][row, pad:], example.labels)
    n_images = sum(len(it.images) for it in items)
    assert batch["image_grid_thw"].shape[0] == n_images
    assert sum(len(g) for g in micro_batches(examples, 1)) == 3  # over-budget examples get groups of their own


def test_tokenizer_is_deterministic_and_answers_are_single_tokens():
    a, b = embedded_tokenizer(), embedded_tokenizer()
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    for word in ("purple", "kettle", "triangle", "down", "7"):
        assert len(a(word, add_special_tokens=False)["input_ids"]) == 1
    text = "Ünïcode 🙂 and anything else"
    assert a.decode(a(text)["input_ids"]) == text


def test_learning_rate_warms_up_then_decays_to_the_floor():
    rates = [learning_rate(s, 1e-3, 100, 10) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))
    assert rates[-1] == pytest.approx(FLOOR * 1e-3)


def test_batches_depend_on_seed_and_step_only_and_follow_the_curriculum():
    mixture = select(DEFAULT_MIXTURE, ["attribute", "text_copy"])

    def ids(seed: int, step: int, total: int = 100) -> list[tuple[str, str]]:
        return [(name, item.prompt) for name, item in draw_items(mixture, seed, step, total, 6)]

    assert ids(0, 7) == ids(0, 7)
    assert ids(0, 7) != ids(0, 8) and ids(0, 7) != ids(1, 7)
    assert all(item.split == "train" for _, item in draw_items(mixture, 0, 3, 100, 6))
    easy = {"colour_of_one", "attribute_1_2", "text_copy_short"}
    first = [name for step in range(20) for name, _ in draw_items(mixture, 0, step, 1000, 6)]
    last = [name for step in range(980, 1000) for name, _ in draw_items(mixture, 0, step, 1000, 6)]
    assert sum(n in easy for n in first) > 2 * sum(n in easy for n in last)


def test_prefetched_steps_equal_steps_prepared_in_the_main_process(loaded):
    """Workers only move the data work elsewhere: every tensor of every step is the same."""
    from hybridkv.embedded.prefetch import StepData
    from hybridkv.embedded.training import TrainSettings

    settings = TrainSettings(steps=50, batch_size=3, follow_ups=1, readouts=1)
    mixture = select(DEFAULT_MIXTURE, None)
    with StepData(loaded, mixture, settings) as here, StepData(loaded, mixture, settings, workers=2) as ahead:
        for step in (0, 1, 2, 7):  # a skipped step is computed on demand
            mine, theirs = here.get(step, 50), ahead.get(step, 50)
            assert [e.label for e in mine] == [e.label for e in theirs]
            for a, b in zip(mine, theirs, strict=True):
                for name in (
                    "input_ids",
                    "labels",
                    "mm_token_type_ids",
                    "pixel_values",
                    "image_grid_thw",
                    "visual_targets",
                ):
                    x, y = getattr(a, name), getattr(b, name)
                    assert (x is None and y is None) or torch.equal(x, y), name


def test_late_workers_are_shut_and_the_step_is_prepared_here(loaded):
    """A worker that does not answer in time costs a warning, never a hung run or different data."""
    from hybridkv.embedded.prefetch import StepData
    from hybridkv.embedded.training import TrainSettings

    settings = TrainSettings(steps=5, batch_size=2)
    mixture = select(DEFAULT_MIXTURE, None)
    with (
        StepData(loaded, mixture, settings) as here,
        StepData(loaded, mixture, settings, workers=1, timeout_s=0) as late,
    ):
        with pytest.warns(RuntimeWarning, match="main process"):
            first = late.get(0, 5)  # the spawned worker is still importing torch
        assert late._pool is None
        for step, examples in ((0, first), (1, late.get(1, 5))):
            mine = here.get(step, 5)
            assert len(mine) == len(examples) == 2
            assert all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(mine, examples, strict=True))


def test_readouts_add_supervised_turns_after_the_question(loaded):
    from hybridkv.embedded.mixture import Variant
    from hybridkv.embedded.prefetch import step_examples
    from hybridkv.embedded.training import TrainSettings

    mixture = (Variant("tc", "text_copy", 1.0, {"distractor_prob": 0.0}),)
    plain = step_examples(loaded, mixture, TrainSettings(steps=5, batch_size=2, follow_ups=0), 0)
    read = step_examples(loaded, mixture, TrainSettings(steps=5, batch_size=2, follow_ups=0, readouts=1), 0)
    tok = loaded.tokenizer
    for a, b in zip(plain, read, strict=True):
        assert torch.equal(b.input_ids[: len(a)], a.input_ids)  # the item's own turn is unchanged
        tail = tok.decode(b.input_ids[len(a) :])
        assert "Repeat the list." in tail
        assert b.answer_tokens > a.answer_tokens + 3  # every listed word (and the spaces) supervised
    with pytest.raises(ConfigError):
        TrainSettings(readouts=-1)


def test_init_copies_a_trained_models_weights_and_refuses_other_folders(tmp_path):
    from hybridkv.embedded.training import load_initial_weights
    from hybridkv.models import save_pretrained_dir

    source = build_untrained(seed=0)
    save_pretrained_dir(source, tmp_path / "run")
    target = build_untrained(seed=1)
    assert not torch.equal(target.model.lm_head.weight, source.model.lm_head.weight)
    load_initial_weights(target, str(tmp_path / "run"))
    for (name, a), b in zip(source.model.state_dict().items(), target.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ConfigError, match="not a model directory"):
        load_initial_weights(target, str(tmp_path))


def test_named_mixtures_cover_every_task_and_unknown_names_fail():
    from hybridkv.data import TASKS
    from hybridkv.embedded.mixture import MIXTURES
    from hybridkv.embedded.training import TrainSettings

    for name, mixture in MIXTURES.items():
        assert {v.task for v in mixture} == set(TASKS), name
    assert TrainSettings(mixture="weak-tasks").mixture == "weak-tasks"
    with pytest.raises(ConfigError, match="weak-tasks"):
        TrainSettings(mixture="weak")


def test_video_follow_ups_ask_about_another_object_the_question_fits():
    """A clip's follow-up makes another object the asked one (object 0): one that appears after the first
    frame, or one that moves; only train-split questions, and only where such an object exists."""
    import numpy as np

    from hybridkv.data import content_key
    from hybridkv.data.seeding import split_of
    from hybridkv.data.tasks.video import direction_of
    from hybridkv.embedded.questions import follow_ups

    asked = 0
    for item in generate_items("video", "train", 60):
        for extra in follow_ups(item, 3, np.random.default_rng(0)):
            asked += 1
            target = extra.meta["objects"][0]
            assert target != item.meta["objects"][0]
            assert sorted(map(str, extra.meta["objects"])) == sorted(map(str, item.meta["objects"]))
            assert split_of("video", content_key("video", extra.meta)) == "train"
            if item.meta["question"] == "appear":
                assert target["start"] > 0 and extra.answer == str(target["start"] + 1)
            else:
                assert extra.answer == direction_of(target)
    assert asked > 10
