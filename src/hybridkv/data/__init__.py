"""Procedurally generated multimodal tasks whose answers need specific visual tokens.

Each task asks for one small detail (a grid cell, the colour of a shape in image k, a count, the
frame where something appears, an item of a list) among many look-alikes, so a KV cache that keeps
the wrong tokens fails visibly. Items are deterministic, splits are disjoint by construction, and
images are sized in whole 28 px blocks so that visual token counts are known in advance.
"""

from __future__ import annotations

from .item import TaskItem
from .jsonl import export_jsonl, load_jsonl
from .question import split_question
from .registry import (
    TASK_SPECS,
    TASKS,
    answer_vocabulary,
    content_key,
    generate_items,
    item_id,
    iter_suite,
    question_of,
    render,
    sample_meta,
)
from .scoring import normalize_answer, score
from .seeding import SPLITS, split_of
from .tokens import image_tokens, visual_tokens

__all__ = [
    "SPLITS",
    "TASKS",
    "TASK_SPECS",
    "TaskItem",
    "answer_vocabulary",
    "content_key",
    "export_jsonl",
    "generate_items",
    "image_tokens",
    "item_id",
    "iter_suite",
    "load_jsonl",
    "normalize_answer",
    "question_of",
    "render",
    "sample_meta",
    "score",
    "split_question",
    "split_of",
    "visual_tokens",
]
