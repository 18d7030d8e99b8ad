"""The embedded model's architecture: a small Qwen2.5-VL.

Qwen2.5-VL so that everything hybridkv handles in real checkpoints is exercised: multimodal RoPE
(positions along time, height and width), a ViT that alternates windowed and full attention, 2x2
patch merging (one visual token per 28x28 px) and grouped-query attention. The text model has 8
query heads sharing 4 KV heads of width 32 in each of its layers, so per-head KV budgets, head
profiles and GQA grouping are all non-trivial. Embeddings are tied: with a ~700-token vocabulary
they are a few percent of the weights.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase, Qwen2_5_VLConfig

TEXT_LAYERS = 4
HIDDEN = 256
HEADS = 8
KV_HEADS = 4
HEAD_DIM = HIDDEN // HEADS
MLP = 2 * HIDDEN
VISION_DEPTH = 4
VISION_HIDDEN = 64
VISION_HEADS = 2
# Windowed blocks see 112 px (8x8 patches); blocks 1 and 3 see the whole image.
VISION_FULL_ATTENTION = (1, 3)
MAX_POSITIONS = 32768
ROPE_THETA = 1e6
# head_dim / 2 rotary frequencies split over (time, height, width), in Qwen2.5-VL's proportions.
MROPE_SECTION = (4, 6, 6)


def embedded_config(tokenizer: PreTrainedTokenizerBase) -> Qwen2_5_VLConfig:
    """The config for ``tokenizer`` (vocabulary size and special token ids come from it)."""

    def token_id(token: str) -> int:
        return tokenizer.convert_tokens_to_ids(token)

    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": HIDDEN,
            "intermediate_size": MLP,
            "num_hidden_layers": TEXT_LAYERS,
            "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS,
            "head_dim": HEAD_DIM,
            "max_position_embeddings": MAX_POSITIONS,
            "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_THETA, "mrope_section": list(MROPE_SECTION)},
            "tie_word_embeddings": True,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "depth": VISION_DEPTH,
            "hidden_size": VISION_HIDDEN,
            "intermediate_size": 4 * VISION_HIDDEN,
            "num_heads": VISION_HEADS,
            "out_hidden_size": HIDDEN,
            "fullatt_block_indexes": list(VISION_FULL_ATTENTION),
        },
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        tie_word_embeddings=True,
    )
