"""The adapter contract between hybridkv's cache core and one model family, and the loaded-model bundle.

The core never touches modeling code: it needs the language model's config, its attention modules (to hook
them), an ``attn_implementation`` value that routes only the language model through hybridkv's attention
function, and a per-position token type. Everything else stays stock transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import BatchFeature, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.processing_utils import ProcessorMixin

from hybridkv.errors import InputError, UnsupportedModelError
from hybridkv.models.frame_pairs import pair_frames, pairs_frames
from hybridkv.token_types import TokenType

# Vision towers attend bidirectionally over patches; only the language model's KV is cached.
VISION_ATTENTION = "sdpa"


@dataclass(frozen=True)
class ModelAdapter:
    """Where one family keeps its language model and vision placeholders.

    ``model_class`` and ``processor_class`` name what transformers loads a checkpoint with; the names are
    resolved lazily so importing hybridkv does not import every modeling file.
    """

    family: str
    model_types: tuple[str, ...]
    is_multimodal: bool
    model_class: str
    language_model_path: str
    processor_class: type[ProcessorMixin] | None = None
    layout: Callable[[Mapping[str, torch.Tensor], PretrainedConfig], torch.Tensor | None] | None = None
    """Places visual tokens in their image's grid (see :meth:`visual_layout`); None where unknown."""

    def text_config(self, config: PretrainedConfig) -> PretrainedConfig:
        """The language model's config (layers, heads, KV heads, head_dim) whatever the nesting."""
        return config.get_text_config(decoder=True)

    def attention_modules(self, model: PreTrainedModel) -> list[torch.nn.Module]:
        """The language model's self-attention modules, in layer order."""
        try:
            layers = model.get_submodule(self.language_model_path).layers
            modules = [layer.self_attn for layer in layers]
        except AttributeError as exc:
            raise UnsupportedModelError(
                f"{type(model).__name__} has no {self.language_model_path}.layers[i].self_attn; "
                "use the transformers version hybridkv pins (5.23)"
            ) from exc
        if [getattr(m, "layer_idx", None) for m in modules] != list(range(len(modules))):
            raise UnsupportedModelError(
                f"{type(model).__name__}'s attention modules are not numbered 0..n-1 by layer_idx; "
                "use the transformers version hybridkv pins (5.23)"
            )
        return modules

    def forget_prompt(self, model: PreTrainedModel) -> None:
        """Drop what the model keeps from its last prompt for the next forward to reuse: Qwen-VL caches its
        M-RoPE offsets (``rope_deltas``) and applies them to any later cached continuation, so a text-only
        prompt prefilled outside ``generate`` would be continued at the positions of the previous prompt's
        images. Call before a prefill that a cached continuation will follow."""
        for module in model.modules():
            if getattr(module, "rope_deltas", None) is not None:
                module.rope_deltas = None

    def attn_implementation(self, name: str) -> str | dict[str, str]:
        """A ``set_attn_implementation`` value that gives ``name`` to the language model only.

        A plain string would also route the vision tower (non-causal, no KV cache) through ``name``.
        """
        if not self.is_multimodal:
            return name
        return {"": name, "text_config": name, "vision_config": VISION_ATTENTION}

    def token_types(self, inputs: Mapping[str, torch.Tensor], config: PretrainedConfig) -> torch.LongTensor:
        """``[B, L]`` :class:`TokenType` codes: image placeholders IMAGE, video ones VIDEO, the rest TEXT."""
        input_ids = inputs.get("input_ids") if isinstance(inputs, Mapping) else None
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            raise InputError("token_types needs inputs['input_ids'] as a [batch, length] tensor; use build_inputs")
        types = torch.full_like(input_ids, int(TokenType.TEXT), dtype=torch.long)
        if self.is_multimodal:
            for attr, kind in (("image_token_id", TokenType.IMAGE), ("video_token_id", TokenType.VIDEO)):
                token_id = getattr(config, attr, None)
                if token_id is not None:
                    types[input_ids == token_id] = int(kind)
        return types

    def visual_layout(self, inputs: Mapping[str, torch.Tensor], config: PretrainedConfig) -> torch.Tensor | None:
        """``[B, L, 3]`` (image, row, column) of each visual token, -1 for text, so that retrieval can fetch
        image tiles (``hybridkv.cache.chunking``); None for text-only prompts and families without a layout."""
        if self.layout is None or not isinstance(inputs, Mapping):
            return None
        return self.layout(inputs, config)


ImagesArg = Sequence[Image.Image] | Sequence[Sequence[Image.Image]] | None


@dataclass
class LoadedModel:
    """A model with the tokenizer/processor that feeds it and the adapter that describes it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    processor: ProcessorMixin | None
    adapter: ModelAdapter
    name: str

    def build_inputs(self, prompt: str | Sequence[str], images: ImagesArg = None) -> BatchFeature:
        """Chat-formatted, left-padded model inputs for one prompt or a batch.

        ``images`` is None, a list of images (one prompt) or a list of lists (one per prompt). Each prompt
        becomes a single user turn with its images first, followed by the assistant header.
        """
        prompts, image_lists = _normalize_batch(prompt, images)
        has_images = any(image_lists)
        if has_images and not self.adapter.is_multimodal:
            raise InputError(f"{self.name} is a text-only model; drop the images or load a vision-language model")
        texts = [self._render(p, imgs) for p, imgs in zip(prompts, image_lists, strict=True)]
        return self._encode(texts, image_lists)

    def build_context_inputs(self, context: str, images: Sequence[Image.Image] | None = None) -> BatchFeature:
        """Inputs of one user turn cut where its question would start: the images and ``context`` only.

        A session prefills and compresses these, then runs only a question's tokens against the compressed
        cache (the question-agnostic setting); :func:`require_token_prefix` checks that the cut holds.
        """
        image_list = list(images or [])
        rendered = self._render(context + _QUESTION_MARK, image_list)
        return self._encode([rendered[: rendered.rfind(_QUESTION_MARK)]], [image_list])

    def _encode(self, texts: list[str], image_lists: list[list[Image.Image]]) -> BatchFeature:
        """Tokenize rendered prompts (and their images), left-padded, on the model's device."""
        has_images = any(image_lists)
        bos = self.tokenizer.bos_token
        # Templates that write BOS themselves must not get a second one from the tokenizer.
        add_special = not (bos and all(t.startswith(bos) for t in texts))
        common = dict(padding=True, padding_side="left", add_special_tokens=add_special, return_tensors="pt")
        if self.processor is not None:
            out = self.processor(text=texts, images=image_lists if has_images else None, **common)
        else:
            out = self.tokenizer(texts, **common)
        out = BatchFeature(data=dict(out))
        if has_images and pairs_frames(self.model.config):
            image_processor = self.processor.image_processor
            out["pixel_values"] = pair_frames(
                out["pixel_values"],
                out["image_grid_thw"],
                image_lists,
                image_processor.temporal_patch_size,
                image_processor.patch_size,
            )
        limit = getattr(self.adapter.text_config(self.model.config), "max_position_embeddings", None)
        if limit is not None and out["input_ids"].shape[1] > limit:
            raise InputError(
                f"prompt is {out['input_ids'].shape[1]} tokens but {self.name} has a {limit}-token context; "
                "shorten the prompt or use smaller images"
            )
        return out.to(device=self.model.device, dtype=self.model.dtype)

    def token_types(self, inputs: Mapping[str, torch.Tensor]) -> torch.LongTensor:
        """``[B, L]`` :class:`TokenType` per prompt position (see :meth:`ModelAdapter.token_types`)."""
        return self.adapter.token_types(inputs, self.model.config)

    def decode(self, token_ids: torch.Tensor | Sequence[int]) -> str:
        """Text of one sequence of ids, without special tokens."""
        if isinstance(token_ids, torch.Tensor):
            if token_ids.dim() == 2 and token_ids.shape[0] == 1:
                token_ids = token_ids[0]
            if token_ids.dim() != 1:
                raise InputError("decode takes one sequence of ids; index the batch first (ids[i])")
            token_ids = token_ids.tolist()
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True)

    def _render(self, prompt: str, images: Sequence[Image.Image]) -> str:
        owner = self.processor if self.processor is not None else self.tokenizer
        if owner.chat_template is None:
            if self.adapter.is_multimodal:
                raise InputError(f"{self.name} has no chat template; add chat_template.jinja to its directory")
            return prompt  # a base LM: the prompt is the text
        if self.adapter.is_multimodal:
            content: str | list[dict[str, str]] = [{"type": "image"} for _ in images]
            content.append({"type": "text", "text": prompt})
        else:
            content = prompt
        messages = [{"role": "user", "content": content}]
        return owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


_QUESTION_MARK = " ?"  # a stand-in question: where the real one goes, the context ends


def require_token_prefix(prefix_ids: torch.Tensor, full_ids: torch.Tensor) -> None:
    """Raise unless ``prefix_ids`` [1, n] are the first tokens of ``full_ids`` and something follows them."""
    n = prefix_ids.shape[1]
    if n >= full_ids.shape[1] or not torch.equal(full_ids[:, :n], prefix_ids):
        raise InputError(
            "the tokenizer merges the end of the context with the start of the question; start the "
            "question at a word boundary (e.g. ' What ...' after a sentence)"
        )


def _normalize_batch(prompt: str | Sequence[str], images: ImagesArg) -> tuple[list[str], list[list[Image.Image]]]:
    """Prompts as a list and images as one list per prompt, or an InputError naming the expected shape."""
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, Sequence) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = list(prompt)
    else:
        raise InputError("prompt must be a string or a non-empty list of strings")
    if images is None:
        image_lists: list[list[Image.Image]] = [[] for _ in prompts]
    elif isinstance(images, Image.Image):
        raise InputError("images must be a list of PIL images (one prompt) or a list of lists (a batch)")
    elif all(isinstance(im, Image.Image) for im in images) and (len(prompts) == 1 or not images):
        image_lists = [list(images)] if len(prompts) == 1 else [[] for _ in prompts]
    elif len(images) == len(prompts) and all(
        isinstance(group, Sequence) and all(isinstance(im, Image.Image) for im in group) for group in images
    ):
        image_lists = [list(group) for group in images]
    else:
        raise InputError(
            f"images for {len(prompts)} prompt(s) must be a list of PIL images (one prompt) "
            "or one list of PIL images per prompt"
        )
    for p, imgs in zip(prompts, image_lists, strict=True):
        if not p.strip() and not imgs:
            raise InputError("prompt is empty; pass some text or an image")
    return prompts, image_lists
