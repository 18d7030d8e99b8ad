"""HeadProfile: file round trip, clear refusals, the calibration pass on a tiny model, plot and CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time

import pytest
import torch
from PIL import Image

from hybridkv.errors import ConfigError, InputError
from hybridkv.models.testing import synthetic_image
from hybridkv.profile import (
    SCHEMA_VERSION,
    HeadProfile,
    ProfileError,
    load_profile,
    model_fingerprint,
    plot_profile,
    save_profile,
)
from hybridkv.profiling import (
    CalibItem,
    calib_source,
    decode_attention,
    jsonl_items,
    profile_model,
    visual_topk_overlap,
)

# Short prompts with small images: a few dozen visual tokens each keeps the pass fast on CPU.
SUITE_TASKS = "suite:attribute,counting,text_copy"


@pytest.fixture(scope="module")
def measured():
    """One calibration pass over 3 suite items, shared by the tests that only read it."""
    from hybridkv.models import tiny_random_model

    loaded = tiny_random_model("qwen2_5_vl")
    items, _, calib = calib_source(SUITE_TASKS, samples=3)
    items = list(items)  # render before timing
    t0 = time.perf_counter()
    profile = profile_model(loaded, items, calib=calib, theta=0.13)
    return loaded, profile, time.perf_counter() - t0


def _fake_profile(layers: int = 3, kv: int = 2, **changes) -> HeadProfile:
    g = torch.Generator().manual_seed(0)
    fp = {
        "architecture": "FakeForCausalLM",
        "model_type": "fake",
        "num_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": kv,
        "head_dim": 16,
        "weights_sha256": "ab" * 32,
    }
    rate = torch.rand(layers, kv, generator=g)
    overlap = torch.rand(layers, kv, generator=g)
    overlap[0, 0] = math.nan
    fields = dict(
        fingerprint=fp,
        score_name="text_topk",
        theta=0.9,
        score_mean=torch.rand(layers, kv, generator=g),
        score_var=torch.rand(layers, kv, generator=g) / 10,
        static_rate=rate,
        flip_rate=2 * torch.minimum(rate, 1 - rate),
        topk_overlap=overlap,
        calib={"source": "suite", "samples": 5, "seed": 0, "tasks": ["grid"]},
        library_version="0.1.0",
        options={"window": 16},
        input_scores=torch.rand(5, layers, kv, generator=g),
        input_static=torch.rand(5, layers, kv, generator=g) > 0.5,
        visual_mass=torch.rand(layers, kv, generator=g),
    )
    fields.update(changes)
    return HeadProfile(**fields)


def test_round_trip_is_exact(tmp_path):
    profile = _fake_profile()
    path = tmp_path / "p.json"
    save_profile(profile, path)
    assert (tmp_path / "p.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "p.safetensors"]  # no temporary files left
    back = load_profile(path)
    assert back == profile
    assert math.isnan(float(back.topk_overlap[0, 0]))
    assert back != _fake_profile(theta=0.8)
    manifest = json.loads(path.read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert {"format", "fingerprint", "score", "calib", "library_version", "arrays", "options"} <= set(manifest)
    again = tmp_path / "again" / "p.json"
    save_profile(back, again)  # byte-identical files: profiles can be diffed and checked in
    assert again.read_bytes() == path.read_bytes()
    assert again.with_suffix(".safetensors").read_bytes() == (tmp_path / "p.safetensors").read_bytes()


def test_a_profile_without_visual_mass_still_reads(tmp_path):
    profile = _fake_profile(visual_mass=None)  # as written before visual_mass was measured
    save_profile(profile, tmp_path / "old.json")
    back = load_profile(tmp_path / "old.json")
    assert back.visual_mass is None and back == profile
    assert back != _fake_profile()
    with pytest.raises(ProfileError, match="visual_mass"):
        save_profile(_fake_profile(visual_mass=torch.zeros(2, 2)), tmp_path / "bad.json")


def test_schema_mismatch_names_both_versions(tmp_path):
    path = tmp_path / "p.json"
    save_profile(_fake_profile(), path)
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    msg = str(err.value)
    assert "\n" not in msg and f"version {SCHEMA_VERSION + 1}" in msg and f"version {SCHEMA_VERSION}" in msg
    assert isinstance(err.value, ConfigError)


def test_fingerprint_mismatch_names_both_models(tmp_path, tiny):
    path = tmp_path / "p.json"
    save_profile(_fake_profile(), path)
    with pytest.raises(ProfileError) as err:
        load_profile(path, model=tiny("qwen2_5_vl"))
    msg = str(err.value)
    assert "\n" not in msg and "FakeForCausalLM" in msg and "Qwen2_5_VLForConditionalGeneration" in msg


def test_fingerprint_tells_families_apart_and_matches_itself(tiny):
    a, b = tiny("qwen2_5_vl"), tiny("qwen2_vl")
    fa = model_fingerprint(a)
    assert fa == model_fingerprint(a.model)  # LoadedModel or bare model
    assert (fa["num_layers"], fa["num_key_value_heads"], fa["num_attention_heads"], fa["head_dim"]) == (4, 2, 4, 32)
    assert fa["weights_sha256"] != model_fingerprint(b)["weights_sha256"]


def test_fingerprint_survives_a_checkpoint_directory(tmp_path, tiny):
    from hybridkv.models import load_model, save_pretrained_dir

    save_pretrained_dir(tiny("qwen2_5_vl"), tmp_path / "ckpt")
    assert model_fingerprint(load_model(tmp_path / "ckpt")) == model_fingerprint(tiny("qwen2_5_vl"))


def test_damaged_or_mismatched_companion_is_refused(tmp_path):
    path = tmp_path / "p.json"
    save_profile(_fake_profile(), path)
    save_profile(_fake_profile(score_mean=torch.zeros(3, 2)), tmp_path / "other.json")
    (tmp_path / "p.safetensors").write_bytes((tmp_path / "other.safetensors").read_bytes())
    with pytest.raises(ProfileError, match="does not belong"):
        load_profile(path)
    (tmp_path / "p.safetensors").unlink()
    with pytest.raises(ProfileError, match="missing"):
        load_profile(path)
    with pytest.raises(ProfileError, match="no profile"):
        load_profile(tmp_path / "absent.json")


def test_profiling_tiny_model_is_fast_and_in_range(measured, tmp_path):
    loaded, profile, seconds = measured
    assert seconds < 15.0  # about 1-2 s on an idle core; generous for shared CI machines
    for name in ("score_mean", "score_var", "static_rate", "flip_rate", "topk_overlap"):
        t = getattr(profile, name)
        assert t.shape == (4, 2) and t.dtype == torch.float32, name
    assert ((profile.score_mean >= 0) & (profile.score_mean <= 1)).all()
    assert (profile.score_var >= 0).all()
    assert ((profile.static_rate >= 0) & (profile.static_rate <= 1)).all()
    assert torch.allclose(profile.flip_rate, 2 * torch.minimum(profile.static_rate, 1 - profile.static_rate))
    assert ((profile.topk_overlap >= 0) & (profile.topk_overlap <= 1)).all()  # every item has an image
    assert profile.visual_mass.shape == (4, 2) and profile.visual_mass.dtype == torch.float32
    assert ((profile.visual_mass >= 0) & (profile.visual_mass <= 1 + 1e-6)).all()
    assert profile.input_scores.shape == (3, 4, 2)
    # online types are the cache's own decisions, consistent with the recorded scores
    assert torch.equal(profile.input_static, profile.input_scores >= profile.theta)
    assert torch.allclose(profile.static_rate, profile.input_static.float().mean(0))
    assert torch.equal(profile.static_types(), profile.score_mean >= 0.13)
    assert profile.calib["samples"] == 3 and profile.calib["tasks"] == ["attribute", "counting", "text_copy"]
    profile.check_model(loaded)
    save_profile(profile, tmp_path / "p.json")
    assert load_profile(tmp_path / "p.json", model=loaded) == profile
    # nothing left on the model
    cfg = loaded.model.config
    assert cfg._attn_implementation == "sdpa" and cfg.text_config._attn_implementation == "sdpa"
    assert all(not m._forward_pre_hooks for m in loaded.adapter.attention_modules(loaded.model))


def test_profile_scores_are_the_caches_scores(measured):
    from hybridkv.generation import generate
    from hybridkv.methods import HybridKV

    loaded, profile, _ = measured
    item = next(iter(calib_source(SUITE_TASKS, samples=1)[0]))
    inputs = loaded.build_inputs(item.prompt, list(item.images))
    stats = generate(loaded.model, inputs, HybridKV(budget=0.5, theta=0.13), max_new_tokens=2).cache_stats
    scores = torch.tensor([layer["scores"][0] for layer in stats["heads"]])
    assert torch.allclose(profile.input_scores[0], scores)


def test_decode_probe_equals_eager_attention_maps(tiny):
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("What is drawn?", [synthetic_image(112, 112, seed=3)])
    length = inputs["input_ids"].shape[1]
    probe = decode_attention(loaded, inputs, steps=3)
    assert probe.shape == (3, 4, 2, length)
    model = loaded.model
    model.set_attn_implementation(loaded.adapter.attn_implementation("eager"))
    try:
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=4,
                min_new_tokens=4,
                do_sample=False,
                output_attentions=True,
                return_dict_in_generate=True,
            )
    finally:
        model.set_attn_implementation(loaded.adapter.attn_implementation("sdpa"))
    # query heads 2h, 2h+1 share KV head h; step 0 of `attentions` is the prefill
    ref = torch.stack(
        [
            torch.stack([layer[0, :, -1, :length].reshape(2, 2, length).mean(1) for layer in step])
            for step in out.attentions[1:]
        ]
    )
    torch.testing.assert_close(probe, ref, atol=1e-5, rtol=1e-4)


def test_topk_overlap_definition():
    visual = torch.tensor([False, True, True, True, True, False])
    attn = torch.zeros(3, 1, 2, 6)
    attn[:, 0, 0, 1:3] = 1.0  # head 0: always tokens 1, 2
    attn[0, 0, 1, 1:3] = 1.0  # head 1: {1, 2} -> {3, 4} -> {2, 3}
    attn[1, 0, 1, 3:5] = 1.0
    attn[2, 0, 1, 2:4] = 1.0
    got = visual_topk_overlap(attn, visual, top_k=2)
    assert got[0, 0] == 1.0
    assert torch.isclose(got[0, 1], torch.tensor((0.0 + 1 / 3) / 2))
    assert torch.isnan(visual_topk_overlap(attn, torch.zeros(6, dtype=torch.bool), top_k=2)).all()


def test_jsonl_source(tmp_path, tiny):
    synthetic_image(56, 56, seed=1).save(tmp_path / "a.png")
    (tmp_path / "imgs").mkdir()
    synthetic_image(84, 56, seed=2).save(tmp_path / "imgs" / "b.png")
    lines = [
        {"prompt": "Colour of the square?", "images": ["a.png"]},
        {"prompt": "Compare them.", "images": ["a.png", "imgs/b.png"], "task": "pair"},
        {"prompt": "Text only here."},
    ]
    path = tmp_path / "calib.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    items, n, calib = calib_source(str(path), samples=10)
    assert n == 3 and [len(i.images) for i in items] == [1, 2, 0] and calib["tasks"] == ["pair"]
    profile = profile_model(tiny("qwen2_5_vl"), items, calib=calib, decode_steps=2)
    assert profile.calib["samples"] == 3 and profile.calib["source"] == str(path)
    assert torch.isnan(profile.input_overlap[2]).all() and not torch.isnan(profile.input_overlap[:2]).any()
    assert not torch.isnan(profile.topk_overlap).any()  # NaN of the text-only input is left out of the mean


def test_jsonl_errors_are_one_line_input_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{not json}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid JSON"):
        jsonl_items(bad)
    bad.write_text('{"prompt": "x", "images": ["missing.png"]}\n')
    with pytest.raises(InputError, match="does not exist"):
        jsonl_items(bad)
    bad.write_text('{"images": []}\n')
    with pytest.raises(InputError, match="prompt"):
        jsonl_items(bad)
    with pytest.raises(InputError, match="neither 'suite'"):
        calib_source(str(tmp_path / "nope.jsonl"), samples=1)
    with pytest.raises(ConfigError, match="unknown task"):
        calib_source("suite:nope", samples=1)


def test_suite_source_round_robins_over_tasks():
    items, n, calib = calib_source("suite:attribute,counting", samples=3)
    assert [i.task for i in items] == ["attribute", "counting", "attribute"] and n == 3
    assert calib["split"] == "validation"
    video = next(iter(calib_source("suite:video", samples=1)[0]))
    assert len(video.images) >= 2  # frames passed as images


def test_any_evaluation_task_calibrates_a_text_model():
    items, n, calib = calib_source("suite:needle_2k,grid", samples=3)
    items = list(items)
    assert [i.task for i in items] == ["needle_2k", "grid", "needle_2k"] and n == 3
    assert not items[0].images and len(items[0].prompt) > 4000 and items[1].images
    assert calib["tasks"] == ["needle_2k", "grid"]


def test_text_only_model_drops_images(tiny):
    item = CalibItem(prompt="Count the dots.", images=(synthetic_image(56, 56, seed=1),))
    profile = profile_model(tiny("qwen3"), [item], decode_steps=2)
    assert profile.score_mean.shape == (4, 2) and torch.isnan(profile.topk_overlap).all()


def test_bad_options_are_refused(tiny):
    with pytest.raises(ConfigError, match="decode_steps"):
        profile_model(tiny("qwen2_5_vl"), [], decode_steps=1)
    with pytest.raises(ConfigError, match="theta"):
        profile_model(tiny("qwen2_5_vl"), [], theta=1.5)
    with pytest.raises(InputError, match="no calibration inputs"):
        profile_model(tiny("qwen2_5_vl"), [])


def test_plot_writes_png(measured, tmp_path):
    _, profile, _ = measured
    out = tmp_path / "heads.png"
    plot_profile(profile, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["heads.png"]
    # text-only calibration: the visual-overlap panel is undefined and left out (a narrower image)
    text_only = dataclasses.replace(profile, topk_overlap=torch.full_like(profile.topk_overlap, float("nan")))
    plot_profile(text_only, tmp_path / "text.png")
    with Image.open(out) as full, Image.open(tmp_path / "text.png") as narrow:
        assert narrow.width < full.width


def _parse(argv):
    from hybridkv.commands import profile_cmd

    parser = argparse.ArgumentParser(prog="hybridkv")
    profile_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_profile_then_show(tmp_path, capsys):
    out = tmp_path / "prof.json"
    png = tmp_path / "heads.png"
    args = _parse(
        [
            "profile",
            "--model",
            "tiny-random-qwen2_5_vl",
            "--calib",
            "suite:attribute",
            "--samples",
            "1",
            "--decode-steps",
            "2",
            "--out",
            str(out),
            "--plot",
            str(png),
            "--no-progress",
        ]
    )
    assert args.handler(args) == 0
    text = capsys.readouterr().out
    assert "per layer" in text and "profiled 1 inputs" in text
    assert out.is_file() and out.with_suffix(".safetensors").is_file() and png.is_file()

    args = _parse(["profile", "show", str(out)])
    assert args.handler(args) == 0
    text = capsys.readouterr().out
    assert "Qwen2_5_VLForConditionalGeneration" in text and "overlap" in text
    args = _parse(["profile", "show", str(out), "--heads"])
    assert args.handler(args) == 0 and "dynamic" in capsys.readouterr().out


def test_cli_refuses_bad_options_before_loading(tmp_path):
    from hybridkv.commands.profile_cmd import run

    with pytest.raises(ConfigError, match="--out"):
        run(_parse(["profile"]))
    with pytest.raises(ConfigError, match="arrays file"):
        run(_parse(["profile", "--out", str(tmp_path / "p.safetensors")]))
    with pytest.raises(ConfigError, match="theta"):
        run(_parse(["profile", "--out", str(tmp_path / "p.json"), "--theta", "2"]))
    with pytest.raises(ConfigError, match="unknown score"):
        run(_parse(["profile", "--out", str(tmp_path / "p.json"), "--score", "nope"]))


def test_a_method_takes_a_profile_path_as_well_as_a_loaded_profile(tmp_path, tiny, made_up_profile):
    import dataclasses

    import torch

    from hybridkv.config import HybridKVConfig
    from hybridkv.profile import HeadProfile, save_profile

    profile = made_up_profile(tiny("qwen2_5_vl"))  # its arrays share storage; saving needs them apart
    apart = {
        f.name: getattr(profile, f.name).clone()
        for f in dataclasses.fields(profile)
        if torch.is_tensor(getattr(profile, f.name))
    }
    path = tmp_path / "profile.json"
    save_profile(dataclasses.replace(profile, **apart), path)
    config = HybridKVConfig(budget=0.2, classify="profile", profile=str(path))
    assert isinstance(config.profile, HeadProfile)
