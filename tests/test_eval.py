"""`hybridkv eval`: results.json layout, plots, up-front validation and determinism on a tiny random model."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace

import pytest

from hybridkv.commands import eval_cmd
from hybridkv.data import TASKS, score
from hybridkv.errors import BudgetError, ConfigError
from hybridkv.eval.config import EvalConfig, RunSpec
from hybridkv.eval.plots import BUDGET_PLOT, BYTES_PLOT, write_plots
from hybridkv.eval.report import print_summary
from hybridkv.eval.results import RESULTS_FILE, ItemRecord, load_results
from hybridkv.eval.summary import summarize
from hybridkv.eval.tasks import load_items

# One image task and one text-only task, both with short prompts: 4 items x 3 cells stay fast on CPU.
SMALL = [
    "--model", "tiny-random-qwen2_5_vl", "--tasks", "attribute,text_copy", "--limit", "2",
    "--methods", "full,hybridkv", "--budgets", "0.1,0.5",
]  # fmt: skip
N_ITEMS = 4
CELLS = [("full", None), ("hybridkv", 0.1), ("hybridkv", 0.5)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hybridkv")
    eval_cmd.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["eval", *argv])


def _run(out, *argv: str) -> dict:
    args = _parse(*SMALL, "--no-progress", "--out", str(out), *argv)
    assert args.handler(args) == 0
    return json.loads((out / RESULTS_FILE).read_text())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One small evaluation, shared by the tests that only read its outputs."""
    out = tmp_path_factory.mktemp("eval")
    _run(out)
    return out


def _no_model(monkeypatch):
    """Make any model load fail loudly, to prove an error came first."""
    import hybridkv.models

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were validated")

    monkeypatch.setattr(hybridkv.models, "load_model", refuse)


def test_results_json_has_every_prediction_and_the_metadata(run_dir):
    data = json.loads((run_dir / RESULTS_FILE).read_text())
    assert data["format"] == "hybridkv.eval/1"
    meta = data["metadata"]
    for key in ("created", "versions", "git", "machine", "model", "config", "items", "elapsed_s"):
        assert key in meta, key
    for lib in ("hybridkv", "torch", "transformers", "numpy", "python"):
        assert meta["versions"][lib], lib
    assert set(meta["git"]) == {"commit", "dirty"}
    assert meta["git"]["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", meta["git"]["commit"])
    for key in ("platform", "cpu_count", "torch_threads"):
        assert key in meta["machine"], key
    assert meta["config"]["tasks"] == ["attribute", "text_copy"]
    assert meta["config"]["methods"] == ["full", "hybridkv"] and meta["config"]["budgets"] == [0.1, 0.5]
    assert meta["config"]["split"] == "test" and meta["config"]["setting"] == "aware"
    assert meta["model"]["name"] == "tiny-random-qwen2_5_vl" and meta["items"] == N_ITEMS

    records = data["records"]
    assert len(records) == N_ITEMS * len(CELLS)
    ids = sorted({r["id"] for r in records})
    assert len(ids) == N_ITEMS and {r["task"] for r in records} == {"attribute", "text_copy"}
    cells = {(r["id"], r["method"], r["budget"]) for r in records}
    assert cells == {(i, m, b) for i in ids for m, b in CELLS}  # one record per item x cell, full once
    for r in records:
        assert isinstance(r["prediction"], str) and r["answer"]
        assert r["correct"] is score(r["prediction"], r["answer"])
        assert r["prompt_tokens"] > 0 and 1 <= r["new_tokens"] <= 8
        assert 0 < r["kv_hot_bytes"] <= r["full_kv_bytes"] + r["kv_cold_bytes"]
        if r["method"] == "full":
            assert r["kv_hot_bytes"] == r["full_kv_bytes"] and r["static_fraction"] is None
        else:
            assert r["kv_hot_bytes"] < r["full_kv_bytes"] and 0.0 <= r["static_fraction"] <= 1.0

    summary = data["summary"]
    assert [(s["method"], s["budget"]) for s in summary] == CELLS
    for s in summary:
        assert s["items"] == N_ITEMS and set(s["accuracy"]) == {"attribute", "text_copy"}
        assert 0.0 <= s["mean_accuracy"] <= 1.0
    assert summary[0]["hot_ratio"] == 1.0 and summary[1]["kv_hot_bytes"] < summary[2]["kv_hot_bytes"]


def test_agnostic_setting_compresses_before_the_question_and_full_cache_agrees(run_dir, tmp_path):
    aware = json.loads((run_dir / RESULTS_FILE).read_text())
    agnostic = _run(tmp_path, "--setting", "agnostic")
    assert agnostic["metadata"]["config"]["setting"] == "agnostic"

    # Same items and cells; (token-exactness of the full cache across settings is tested in test_session.py,
    # on prompts where a random model's near-tied logits cannot flip under a two-part prefill.)
    assert [(r["id"], r["method"], r["budget"]) for r in agnostic["records"]] == [
        (r["id"], r["method"], r["budget"]) for r in aware["records"]
    ]
    assert [r["prompt_tokens"] for r in agnostic["records"]] == [r["prompt_tokens"] for r in aware["records"]]
    compressed = [r for r in agnostic["records"] if r["method"] == "hybridkv"]
    assert len(compressed) == 2 * N_ITEMS and all(r["kv_hot_bytes"] < r["full_kv_bytes"] for r in compressed)


def test_markdown_table_has_one_row_per_cell(run_dir):
    table = (run_dir / "table.md").read_text().splitlines()
    assert table[0].startswith("| method | budget | attribute | text_copy | mean |")
    assert len(table) == 2 + len(CELLS) and table[2].startswith("| full | - |")


def test_both_plots_are_written_atomically(run_dir):
    for name in (BUDGET_PLOT, BYTES_PLOT):
        data = (run_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_saved_results_reload_and_print(run_dir):
    from rich.console import Console

    results = load_results(run_dir)
    assert results.config.tasks == ("attribute", "text_copy")
    assert results.summary == summarize(results.records, results.config.runs())
    console = Console(record=True, width=200)
    print_summary(results, console=console)
    text = console.export_text()
    assert "hybridkv" in text and "full" in text and "attribute" in text and "0.5" in text
    assert "KV bytes and decode time" not in text  # fits: one table
    narrow = Console(record=True, width=60, force_terminal=True)
    print_summary(results, console=narrow)
    assert "KV bytes and decode time" in narrow.export_text()  # too wide for the terminal: split in two


def test_same_seed_gives_the_same_predictions(run_dir, tmp_path):
    def answers(data):
        return [(r["id"], r["method"], r["budget"], r["prediction"], r["kv_hot_bytes"]) for r in data["records"]]

    first = json.loads((run_dir / RESULTS_FILE).read_text())
    assert answers(_run(tmp_path)) == answers(first)


@pytest.mark.parametrize(
    ("option", "value", "error", "names"),
    [
        ("--methods", "full,hybridkv,h2o-typo", ConfigError, ["h2o-typo", "full", "hybridkv", "snapkv"]),
        ("--tasks", "grid,nope", ConfigError, ["nope", "grid", "video"]),
        ("--budgets", "0.1,1.5", BudgetError, ["1.5"]),
        ("--budgets", "0.1,256", ConfigError, ["mix"]),
        ("--split", "dev", ConfigError, ["dev", "test"]),
        ("--setting", "blind", ConfigError, ["blind", "agnostic", "aware"]),
        ("--limit", "0", ConfigError, ["limit"]),
        ("--option", "bogus=1", ConfigError, ["hybridkv", "bogus"]),
        ("--option", "r", ConfigError, ["KEY=VALUE"]),
        ("--option", "r=-1", ConfigError, ["r"]),
    ],
)
def test_bad_options_fail_in_one_line_before_any_model_work(monkeypatch, tmp_path, option, value, error, names):
    _no_model(monkeypatch)
    out = tmp_path / "out"
    args = _parse(*SMALL, "--out", str(out), option, value)
    with pytest.raises(error) as info:
        args.handler(args)
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert name in message
    assert not out.exists()


def test_method_options_reach_every_compressed_method_and_the_record():
    args = _parse(*SMALL, "--methods", "full,hybridkv,snapkv", "--option", "r=2", "--option", "score=entropy")
    config = eval_cmd.config_from_args(args)
    assert dict(config.method_options) == {"r": 2, "score": "entropy"}
    built = [m for spec, m in config.build_methods().items() if spec.budget is not None]
    assert built and all(m.config.r == 2 and m.config.score == "entropy" for m in built)
    assert config.to_dict()["method_options"] == {"r": 2, "score": "entropy"}


def test_full_runs_once_and_budgets_are_deduplicated_and_sorted():
    config = EvalConfig(tasks=("counting",), methods=("full", "hybridkv", "full"), budgets=(0.5, 0.1, 0.1))
    assert config.runs() == (RunSpec("full", None), RunSpec("hybridkv", 0.1), RunSpec("hybridkv", 0.5))
    assert EvalConfig().tasks == TASKS  # no tasks given: the whole suite
    assert EvalConfig.from_dict(config.to_dict()) == config


def test_item_set_is_fixed_by_the_seed_and_video_frames_are_images():
    first = load_items(["counting", "video"], "test", 2, seed=0)
    again = load_items(["counting", "video"], "test", 2, seed=0)
    assert [(i.id, i.prompt, i.answer) for i in first] == [(i.id, i.prompt, i.answer) for i in again]
    assert [i.id for i in load_items(["counting"], "test", 2, seed=1)] != [i.id for i in first[:2]]
    video = [i for i in first if i.task == "video"]
    assert video and all(i.video_frames >= 2 and len(i.images) == i.video_frames for i in video)


def _record(task: str, method: str, budget, correct: bool, hot: int, full: int = 1000) -> ItemRecord:
    return ItemRecord(
        id=f"{task}/test/0",
        task=task,
        method=method,
        budget=budget,
        prediction="x",
        answer="x" if correct else "y",
        correct=correct,
        prompt_tokens=10,
        new_tokens=2,
        kv_hot_bytes=hot,
        kv_cold_bytes=0,
        full_kv_bytes=full,
        hot_ratio=hot / full,
        prefill_s=0.01,
        decode_ms_per_token=None,
    )


def test_summary_means_tasks_equally_and_plots_a_reference_only_run(tmp_path):
    records = [
        _record("a", "hybridkv", 0.1, True, 100),
        _record("a", "hybridkv", 0.1, False, 300),
        _record("b", "hybridkv", 0.1, True, 200),
        _record("a", "full", None, True, 1000),
    ]
    rows = summarize(records, [RunSpec("full", None), RunSpec("hybridkv", 0.1)])
    assert [r.spec for r in rows] == [RunSpec("full", None), RunSpec("hybridkv", 0.1)]
    compressed = rows[1]
    assert compressed.accuracy == {"a": 0.5, "b": 1.0} and compressed.mean_accuracy == 0.75
    assert compressed.kv_hot_bytes == 200 and compressed.hot_ratio == 0.2 and compressed.decode_ms_per_token is None
    paths = write_plots(rows[:1], tmp_path)  # the reference alone still gives two valid figures
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in paths.values())


def test_runs_split_by_task_merge_into_the_run_made_at_once(run_dir, tmp_path):
    """Sharding an evaluation by task and merging gives the same answers and summary as one run; runs that
    differ in what makes answers comparable, or repeat an answer, are refused with the reason."""
    from hybridkv.errors import InputError
    from hybridkv.eval.merge import merge_results

    whole = load_results(run_dir)
    shards = []
    for task in ("attribute", "text_copy"):
        out = tmp_path / task
        args = _parse(*SMALL, "--no-progress", "--out", str(out), "--tasks", task)
        assert args.handler(args) == 0
        shards.append(load_results(out))
    parser = argparse.ArgumentParser(prog="hybridkv")
    eval_cmd.add_merge_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["merge", str(tmp_path / "attribute"), str(tmp_path / "text_copy"), "--out", str(tmp_path / "m")]
    )
    assert args.handler(args) == 0
    merged = load_results(tmp_path / "m")

    def answers(results):
        return sorted((r.id, r.method, r.budget or 0.0, r.prediction, r.kv_hot_bytes) for r in results.records)

    assert answers(merged) == answers(whole)
    assert merged.config.tasks == whole.config.tasks and merged.metadata["items"] == whole.metadata["items"]
    assert [(r.method, r.budget, r.accuracy) for r in merged.summary] == [
        (r.method, r.budget, r.accuracy) for r in whole.summary
    ]
    assert len(merged.metadata["merged_from"]) == 2

    def table(path):  # all but the decode time, which is measured
        return [line.rsplit("|", 2)[0] for line in (path / "table.md").read_text().splitlines()]

    assert table(tmp_path / "m") == table(run_dir)
    with pytest.raises(InputError, match="two of the runs"):
        merge_results([shards[0], shards[0]])
    other = _parse(
        *SMALL, "--no-progress", "--out", str(tmp_path / "agn"), "--tasks", "text_copy", "--setting", "agnostic"
    )
    assert other.handler(other) == 0
    with pytest.raises(InputError, match="setting"):
        merge_results([shards[0], load_results(tmp_path / "agn")])


def test_runs_of_different_tasks_may_use_different_item_counts(run_dir, tmp_path):
    """A costly task may run on fewer items in its own shard; a task run at two counts is refused."""
    from hybridkv.errors import InputError
    from hybridkv.eval.merge import merge_results

    whole = load_results(run_dir)
    fewer = tmp_path / "fewer"
    args = _parse(*SMALL, "--no-progress", "--out", str(fewer), "--tasks", "text_copy", "--limit", "1")
    assert args.handler(args) == 0
    attribute = [r for r in whole.records if r.task == "attribute"]
    only_attribute = replace(whole, config=replace(whole.config, tasks=("attribute",)), records=attribute)
    merged = merge_results([only_attribute, load_results(fewer)])
    assert merged.metadata["limit_per_task"] == {"attribute": whole.config.limit, "text_copy": 1}
    assert {r.task for r in merged.records} == {"attribute", "text_copy"}
    with pytest.raises(InputError, match="task text_copy was run with"):
        merge_results([whole, load_results(fewer)])
