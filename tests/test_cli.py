"""The CLI: JSON output fields, and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from transformers import GPT2Config

from hybridkv.cli import main
from hybridkv.models.testing import synthetic_image


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "img.png"
    synthetic_image(448, 448, seed=1).save(path)
    return path


def test_generate_json_reports_real_savings(png, capsys):
    code = main(
        [
            "generate",
            "--model",
            "tiny-random-qwen2_5_vl",
            "--image",
            str(png),
            "--prompt",
            "Describe.",
            "--budget",
            "0.1",
            "--max-new-tokens",
            "6",
            "--json",
        ]
    )
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    for field in ("text", "method", "budget", "prompt_tokens", "kv_bytes", "full_kv_bytes", "decode_ms_per_token"):
        assert field in record
    assert record["method"] == "hybridkv" and record["budget"] == 0.1
    assert set(record["kv_bytes"]) == {"hot", "cold"}
    assert record["kv_bytes"]["hot"] < 0.3 * record["full_kv_bytes"]


def test_generate_text_only_and_full_method(capsys):
    code = main(
        [
            "generate",
            "--model",
            "tiny-random-qwen3",
            "--prompt",
            "Hello there.",
            "--method",
            "full",
            "--max-new-tokens",
            "3",
            "--json",
        ]
    )
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["kv_bytes"]["hot"] == record["full_kv_bytes"] and record["kv_bytes"]["cold"] == 0


@pytest.fixture
def unsupported_dir(tmp_path):
    GPT2Config(n_layer=1, n_embd=32, n_head=2).save_pretrained(tmp_path / "gpt2")
    return tmp_path / "gpt2"


def bad_inputs(tmp_path, png, unsupported_dir):
    text_file = tmp_path / "notes.png"
    text_file.write_text("not an image")
    base = ["generate", "--model", "tiny-random-qwen2_5_vl", "--prompt", "Describe."]
    return {
        "zero budget": base + ["--budget", "0"],
        "ratio above one": base + ["--budget", "1.5"],
        "negative tokens": base + ["--budget", "-3"],
        "not a number": base + ["--budget", "lots"],
        "missing image": base + ["--image", str(tmp_path / "missing.png")],
        "not an image": base + ["--image", str(text_file)],
        "unsupported model": ["generate", "--model", str(unsupported_dir), "--prompt", "Hi."],
        "unknown method": base + ["--method", "magic"],
        "missing model dir": ["generate", "--model", str(tmp_path / "nowhere"), "--prompt", "Hi."],
        "sparsemm without profile": base + ["--method", "sparsemm"],
        "fastv layer zero": base + ["--method", "fastv", "--fastv-layer", "0"],
    }


@pytest.mark.parametrize(
    "case",
    [
        "zero budget",
        "ratio above one",
        "negative tokens",
        "not a number",
        "missing image",
        "not an image",
        "unsupported model",
        "unknown method",
        "missing model dir",
        "sparsemm without profile",
        "fastv layer zero",
    ],
)
def test_bad_input_is_one_line_exit_2(case, tmp_path, png, unsupported_dir, capsys, monkeypatch):
    argv = bad_inputs(tmp_path, png, unsupported_dir)[case]
    import hybridkv.generation as generation

    def no_model_work(*a, **k):
        raise AssertionError("model work started before the input was validated")

    if case not in ("unsupported model", "missing model dir"):
        monkeypatch.setattr("hybridkv.models.load_model", no_model_work)
    monkeypatch.setattr(generation, "generate", no_model_work)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("hybridkv: error:")
    assert "Traceback" not in err
    if case == "sparsemm without profile":
        assert "hybridkv profile" in err and "--profile" in err


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hybridkv.cli", "generate", "--prompt", "x", "--budget", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "budget" in proc.stderr


def test_short_prompts_fit_sinks_window_and_chunks_unless_told_not_to(capsys):
    args = ["generate", "--model", "tiny-random-qwen3", "--prompt", "Tell me about the weather in the hills today.",
            "--budget", "0.1", "--window", "16", "--chunk-size", "16", "--max-new-tokens", "2", "--json"]  # fmt: skip
    assert main(args) == 0
    fitted = json.loads(capsys.readouterr().out)["fitted"]
    assert fitted["sinks"] < 4 and fitted["recent_window"] < 16 and fitted["chunk_size"] < 16
    assert main([*args, "--no-fit-short-prompts"]) == 0
    assert json.loads(capsys.readouterr().out)["fitted"] == {"sinks": 4, "recent_window": 16, "chunk_size": 16}


def test_generate_flags_reach_the_method_config():
    from hybridkv.cli import _method_from_args, build_parser

    args = build_parser().parse_args(
        [
            "generate",
            "--prompt",
            "Hi.",
            "--budget",
            "0.1",
            "--sinks",
            "2",
            "--no-chunkless-core",
            "--no-fit-short-prompts",
        ]
    )
    cfg = _method_from_args(args).config
    assert (cfg.sinks, cfg.chunkless_core, cfg.fit_short_prompts) == (2, False, False)
    assert _method_from_args(build_parser().parse_args(["generate", "--prompt", "Hi."])).config.chunkless_core
