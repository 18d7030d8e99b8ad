"""Model adapters, tiny random models, offline loading and image loading (all offline, CPU, fp32)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json  # noqa: E402
import struct  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AttentionInterface, AttentionMaskInterface, BertConfig  # noqa: E402
from transformers.integrations.sdpa_attention import sdpa_attention_forward  # noqa: E402
from transformers.masking_utils import sdpa_mask  # noqa: E402

from hybridkv.errors import InputError, ModelLoadError, UnsupportedModelError  # noqa: E402
from hybridkv.models import (  # noqa: E402
    FAMILIES,
    LoadedModel,
    ModelAdapter,
    get_adapter,
    load_image,
    load_model,
    save_pretrained_dir,
    tiny_random_model,
)
from hybridkv.models.testing import synthetic_image  # noqa: E402
from hybridkv.token_types import TokenType  # noqa: E402

VLMS = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "llava_onevision")
TEXT_LMS = ("llama", "qwen2", "qwen3")

# (width, height) of the test image and the visual tokens it yields, per family.
ONE_IMAGE = {
    "qwen2_vl": ((112, 84), 12),  # 28 px per token: 4 x 3
    "qwen2_5_vl": ((112, 84), 12),
    "qwen3_vl": ((128, 96), 12),  # 32 px per token: 4 x 3
    "llava": ((112, 84), 576),  # fixed: (336 / 14) ** 2
    "llava_onevision": ((112, 84), 460),  # anyres: 256 base + 12 x 16 crop + 12 newlines
}
# Several images in one prompt: LLaVA-OneVision drops anyres tiling (256 base features + 1 newline each).
PER_IMAGE_IN_MULTI = {"llava_onevision": 257}
PROMPTS = ["Hi", "Describe everything you can see, in detail.", "What colour is it?"]


@pytest.fixture(scope="module")
def tiny():
    """Tiny models built once per module (construction is cheap but not free on 2 cores)."""
    cache: dict[str, LoadedModel] = {}

    def get(family: str) -> LoadedModel:
        if family not in cache:
            cache[family] = tiny_random_model(family)
        return cache[family]

    return get


def image_for(family: str, seed: int = 0) -> Image.Image:
    (w, h), _ = ONE_IMAGE[family]
    return synthetic_image(w, h, seed)


def visual_token_id(lm: LoadedModel) -> int:
    return lm.model.config.image_token_id


def greedy(lm: LoadedModel, inputs, n: int = 4) -> torch.Tensor:
    with torch.no_grad():
        return lm.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False)


# --- registry and adapters -------------------------------------------------------------------------


def test_families_are_exactly_the_supported_ones():
    assert FAMILIES == VLMS + TEXT_LMS


def test_get_adapter_by_model_config_and_name(tiny):
    lm = tiny("qwen2_5_vl")
    assert get_adapter(lm.model) is lm.adapter
    assert get_adapter(lm.model.config) is lm.adapter
    assert get_adapter("qwen2_5_vl") is lm.adapter
    assert isinstance(lm.adapter, ModelAdapter)


def test_get_adapter_unsupported_lists_families():
    with pytest.raises(UnsupportedModelError) as err:
        get_adapter(BertConfig())
    message = str(err.value)
    assert "bert" in message and "qwen2_5_vl" in message and "\n" not in message


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_shape(tiny, family):
    lm = tiny(family)
    cfg = lm.adapter.text_config(lm.model.config)
    assert 2 <= cfg.num_hidden_layers <= 4
    assert 64 <= cfg.hidden_size <= 128
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (4, 2, 32)
    assert lm.model.dtype == torch.float32 and not lm.model.training
    assert lm.adapter.is_multimodal == (family in VLMS)
    assert (lm.processor is not None) == lm.adapter.is_multimodal
    modules = lm.adapter.attention_modules(lm.model)
    assert [m.layer_idx for m in modules] == list(range(cfg.num_hidden_layers))
    assert all(m.k_proj.out_features == 2 * 32 for m in modules)  # stored K is per KV head (GQA)


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_is_deterministic_and_leaves_rng_alone(family):
    state = torch.random.get_rng_state()
    a, b, c = (tiny_random_model(family, seed=s).model.state_dict() for s in (0, 0, 1))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("family", VLMS)
def test_placeholder_ids_match_tokenizer(tiny, family):
    lm = tiny(family)
    cfg = lm.model.config
    image_token = "<|image_pad|>" if family.startswith("qwen") else "<image>"
    assert cfg.image_token_id == lm.tokenizer.convert_tokens_to_ids(image_token)
    assert lm.processor.image_token_id == cfg.image_token_id


# --- prompts, token types, generation ---------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_text_only_prompt_generates(tiny, family):
    lm = tiny(family)
    inputs = lm.build_inputs("Hello there")
    assert inputs["input_ids"].shape[0] == 1
    assert "pixel_values" not in inputs
    assert int((lm.token_types(inputs) != TokenType.TEXT).sum()) == 0
    out = greedy(lm, inputs)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 4)
    assert isinstance(lm.decode(out[0, inputs["input_ids"].shape[1] :]), str)


@pytest.mark.parametrize("family", VLMS)
def test_one_image_marks_exactly_the_placeholders(tiny, family):
    lm = tiny(family)
    inputs = lm.build_inputs("What is this?", [image_for(family)])
    types = lm.token_types(inputs)
    assert types.shape == inputs["input_ids"].shape and types.dtype == torch.long
    is_image = inputs["input_ids"] == visual_token_id(lm)
    assert torch.equal(types == TokenType.IMAGE, is_image)
    assert int(is_image.sum()) == ONE_IMAGE[family][1]
    assert set(types.unique().tolist()) == {int(TokenType.TEXT), int(TokenType.IMAGE)}
    if "mm_token_type_ids" in inputs:  # the Qwen processors mark the same positions themselves
        assert torch.equal(inputs["mm_token_type_ids"] == 1, is_image)
    out = greedy(lm, inputs)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 4


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "llava_onevision"])
def test_video_placeholders_are_video(tiny, family):
    lm = tiny(family)
    cfg = lm.model.config
    ids = torch.tensor([[5, cfg.video_token_id, cfg.video_token_id, cfg.image_token_id, 6]])
    expected = [TokenType.TEXT, TokenType.VIDEO, TokenType.VIDEO, TokenType.IMAGE, TokenType.TEXT]
    assert lm.token_types({"input_ids": ids}).tolist() == [[int(t) for t in expected]]
    with pytest.raises(InputError):
        lm.token_types({"attention_mask": torch.ones(1, 5)})


@pytest.mark.parametrize("family", VLMS)
def test_two_images(tiny, family):
    lm = tiny(family)
    inputs = lm.build_inputs("Compare them.", [image_for(family, 0), image_for(family, 1)])
    per_image = PER_IMAGE_IN_MULTI.get(family, ONE_IMAGE[family][1])
    assert int((lm.token_types(inputs) == TokenType.IMAGE).sum()) == 2 * per_image
    greedy(lm, inputs)


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_is_left_padded_and_matches_single_prompts(tiny, family):
    lm = tiny(family)
    images = [[image_for(family)], [], [image_for(family, 1)]] if family in VLMS else None
    batch = lm.build_inputs(PROMPTS, images)
    mask = batch["attention_mask"]
    assert mask.shape[0] == 3 and bool(mask[:, -1].all())
    lengths = mask.sum(1)
    assert len(set(lengths.tolist())) == 3  # different lengths, so padding really happens
    for row, n in enumerate(lengths.tolist()):
        assert int(mask[row, : mask.shape[1] - n].sum()) == 0  # zeros only on the left
    types = lm.token_types(batch)
    assert int(types[mask == 0].sum()) == 0  # padding is TEXT
    out = greedy(lm, batch)
    assert out.shape == (3, mask.shape[1] + 4)
    with torch.no_grad():
        batched = lm.model(**batch).logits[:, -1]
        for row, prompt in enumerate(PROMPTS):
            single = lm.build_inputs(prompt, images[row] if images else None)
            assert int((lm.token_types(single) == TokenType.IMAGE).sum()) == int((types[row] == 1).sum())
            alone = lm.model(**single).logits[0, -1]
            torch.testing.assert_close(batched[row], alone, atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize(
    ("family", "size", "tokens"),
    [
        ("qwen2_5_vl", (1120, 1008), 1440),
        ("qwen3_vl", (1024, 1024), 1024),
        ("llava_onevision", (448, 448), 1312),
    ],
)
def test_one_large_image_gives_over_a_thousand_visual_tokens(tiny, family, size, tokens):
    lm = tiny(family)
    inputs = lm.build_inputs("Describe.", [synthetic_image(*size, seed=3)])
    assert int((lm.token_types(inputs) == TokenType.IMAGE).sum()) == tokens
    assert greedy(lm, inputs, n=1).shape[1] == inputs["input_ids"].shape[1] + 1


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava", "llama"])
def test_byte_level_tokenizer_round_trips(tiny, family):
    tok = tiny(family).tokenizer
    for text in ["plain ascii", "  leading spaces\tand tabs\n", "ünïcödé — 漢字 🙂", ""]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert max(ids, default=0) < len(tok) <= 270
        assert tok.decode(ids) == text


def test_decode_skips_special_tokens(tiny):
    lm = tiny("qwen2_5_vl")
    ids = lm.tokenizer("<|im_start|>héllo wörld<|im_end|>", add_special_tokens=False)["input_ids"]
    assert lm.decode(ids) == "héllo wörld"
    assert lm.decode(torch.tensor([ids])) == "héllo wörld"


@pytest.mark.parametrize(
    ("family", "prompt", "images"),
    [
        ("qwen2", "hi", [synthetic_image(32, 32)]),  # text-only model
        ("qwen2_5_vl", ["a", "b"], [synthetic_image(32, 32)]),  # batch needs one list per prompt
        ("qwen2_5_vl", "   ", None),  # empty prompt
        ("qwen2_5_vl", [], None),
        ("qwen2_5_vl", "hi", synthetic_image(32, 32)),  # a bare image, not a list
    ],
)
def test_build_inputs_rejects_bad_input(tiny, family, prompt, images):
    with pytest.raises(InputError):
        tiny(family).build_inputs(prompt, images)


# --- attention routing ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_attn_implementation_round_trips(tiny, family):
    lm = tiny(family)
    model, adapter = lm.model, lm.adapter
    try:
        model.set_attn_implementation(adapter.attn_implementation("eager"))
        assert adapter.text_config(model.config)._attn_implementation == "eager"
        if adapter.is_multimodal:
            assert model.config.vision_config._attn_implementation == "sdpa"
    finally:
        model.set_attn_implementation(adapter.attn_implementation("sdpa"))
    assert adapter.text_config(model.config)._attn_implementation == "sdpa"
    assert model.config._attn_implementation == "sdpa"
    if adapter.is_multimodal:
        assert model.config.vision_config._attn_implementation == "sdpa"


@pytest.mark.parametrize("family", FAMILIES)
def test_custom_attention_runs_only_in_language_layers(tiny, family):
    lm = tiny(family)
    model, adapter = lm.model, lm.adapter
    seen: list[torch.nn.Module] = []

    def probe(module, *args, **kwargs):
        seen.append(module)
        return sdpa_attention_forward(module, *args, **kwargs)

    name = "hybridkv_test_models_probe"
    AttentionInterface.register(name, probe)
    AttentionMaskInterface.register(name, sdpa_mask)
    images = [image_for(family)] if family in VLMS else None
    inputs = lm.build_inputs("Look closely.", images)
    with torch.no_grad():
        reference = model(**inputs).logits
    try:
        model.set_attn_implementation(adapter.attn_implementation(name))
        with torch.no_grad():
            logits = model(**inputs).logits
        layers = adapter.attention_modules(model)
        assert [id(m) for m in seen] == [id(m) for m in layers]  # once per text layer, vision untouched
        torch.testing.assert_close(logits, reference)
        seen.clear()
        greedy(lm, inputs, n=3)
        assert len(seen) == 3 * len(layers)  # prefill + 2 decode steps
    finally:
        model.set_attn_implementation(adapter.attn_implementation("sdpa"))
    assert adapter.text_config(model.config)._attn_implementation == "sdpa"


# --- saving and loading -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_save_then_load_is_identical(tiny, family, tmp_path):
    lm = tiny(family)
    save_pretrained_dir(lm, tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
    again = load_model(tmp_path)
    assert again.adapter is lm.adapter and again.name == str(tmp_path)
    assert type(again.processor) is type(lm.processor)
    assert again.model.dtype == torch.float32 and not again.model.training
    assert again.model.config._attn_implementation == "sdpa"
    images = [[image_for(family)], [], [image_for(family, 1)]] if family in VLMS else None
    a, b = lm.build_inputs(PROMPTS, images), again.build_inputs(PROMPTS, images)
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
    with torch.no_grad():
        assert torch.equal(lm.model(**a).logits, again.model(**b).logits)
    assert torch.equal(greedy(lm, a), greedy(again, b))


def test_hub_layout_with_legacy_processor_files_loads(tiny, tmp_path):
    """Hub checkpoints ship preprocessor_config.json + chat_template.json, not processor_config.json."""
    lm = tiny("qwen2_5_vl")
    save_pretrained_dir(lm, tmp_path)
    combined = json.loads((tmp_path / "processor_config.json").read_text())
    (tmp_path / "processor_config.json").unlink()
    legacy = {**combined["image_processor"], "processor_class": combined["processor_class"]}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(legacy))
    template = (tmp_path / "chat_template.jinja").read_text()
    (tmp_path / "chat_template.jinja").unlink()
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    again = load_model(str(tmp_path))
    image = [image_for("qwen2_5_vl")]
    assert torch.equal(lm.build_inputs("hi", image)["input_ids"], again.build_inputs("hi", image)["input_ids"])


def test_load_tiny_by_name():
    lm = load_model("tiny-random-qwen3")
    assert lm.name == "tiny-random-qwen3" and lm.adapter.family == "qwen3"


@pytest.mark.parametrize("name", ["does/not/exist", "tiny-random-nope", "nobody-owns/this-model-xyz", "./missing"])
def test_load_model_unknown_names(name):
    with pytest.raises(ModelLoadError) as err:
        load_model(name)
    assert "\n" not in str(err.value)


def test_load_model_bad_directories(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UnsupportedModelError):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(tiny_random_model("qwen2").model.config.to_json_string())
    with pytest.raises(ModelLoadError):  # no weights
        load_model(tmp_path)
    with pytest.raises(ModelLoadError):  # a file, not a directory
        load_model(tmp_path / "config.json")


# --- images -----------------------------------------------------------------------------------------


def test_load_image_valid_png(tmp_path):
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (40, 30), (10, 20, 30, 128)).save(path)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (40, 30)


def test_load_image_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.png"):
        load_image(tmp_path / "nope.png")


def test_load_image_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    with pytest.raises(InputError, match="notes.txt"):
        load_image(str(path))


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares a huge size but holds no pixels: opening it must not try to decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [10_000, 30_000])  # over PIL's warning and its error threshold
def test_load_image_refuses_decompression_bomb(tmp_path, side):
    path = tmp_path / "bomb.png"
    _png_header_only(path, side, side)
    with pytest.raises(InputError, match=r"bomb\.png.*downscale"):
        load_image(path)


def test_synthetic_image_is_deterministic():
    a, b, c = (
        synthetic_image(64, 48, seed=1),
        synthetic_image(64, 48, seed=1),
        synthetic_image(64, 48, seed=2),
    )
    assert a.size == (64, 48) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes() != c.tobytes()
