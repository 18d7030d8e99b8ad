"""Training examples: prompt tokens exactly as at inference, then the answer, with loss on the answer only.

The prompt part comes from :meth:`LoadedModel.build_inputs`, the path every evaluation uses, so the
model is trained on the very token sequence (chat template, visual placeholders, image order) it will
be asked with. The answer is tokenized on its own and followed by the end-of-turn token; labels are
-100 everywhere else, so the model is never trained to reproduce prompts or images.

Examples of very different lengths (a 64-token attribute question, a 3,000-token long_mixed one) are
grouped into micro-batches of similar length under a padded-token budget, so a batch does not pay for
padding every short example to the longest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from hybridkv.data import TaskItem
from hybridkv.errors import InputError
from hybridkv.models import LoadedModel
from hybridkv.models.frame_pairs import pairs_frames

from .model import item_images
from .visual_targets import (
    IGNORE,
    MAX_WORDS,
    answer_places,
    answer_source_words,
    asked_words,
    prompt_places,
    reads_ends,
    sink_share,
    visual_targets,
)

IGNORE_INDEX = -100


# Collated per-labelled-token guidance fields (see ``Example``), popped from a batch before the forward.
ANSWER_GUIDANCE = ("answer_places", "answer_sources", "answer_asked", "sink_shares", "answer_ends")


@dataclass(frozen=True)
class Example:
    """One item as model input: 1-D token tensors plus the vision inputs of its images (if any).

    ``label`` names where the item came from (its task, or a mixture variant) for per-group losses.
    """

    label: str
    input_ids: torch.Tensor
    labels: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    visual_targets: torch.Tensor | None = None
    """Word ids each visual token shows (see ``visual_targets``), for the recognition loss."""
    answer_places: torch.Tensor | None = None
    """``(labelled tokens, 3)``: the (image, row, column) of the grid cell each labelled token is read from,
    ``IGNORE`` where that is not known (see ``visual_targets.answer_places``), for lookup guidance."""
    answer_sources: torch.Tensor | None = None
    """``(labelled tokens, MAX_WORDS)``: the word ids a labelled token's source shows when that is not the
    token itself (a video's object, for the frame it appears in), ``IGNORE`` elsewhere."""
    token_places: torch.Tensor | None = None
    """``(tokens, 3)``: the place of each text token that has one (a listed word), ``IGNORE`` elsewhere."""
    answer_asked: torch.Tensor | None = None
    """``(labelled tokens, MAX_WORDS)``: the word ids by which a labelled token's question names its object
    (see ``visual_targets.asked_words``), ``IGNORE`` elsewhere."""
    sink_shares: torch.Tensor | None = None
    """``(labelled tokens,)``: a count's share of lookup attention for the first token
    (``visual_targets.sink_share``), -1 elsewhere."""
    answer_ends: torch.Tensor | None = None
    """``(labelled tokens,)`` bool: looked up where its object starts and where it ends
    (``visual_targets.reads_ends``)."""

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def answer_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


def encode(
    loaded: LoadedModel,
    item: TaskItem,
    label: str | None = None,
    follow_ups: Sequence[TaskItem | tuple[str, str]] = (),
    motion_words: bool = False,
    count_words: bool = False,
) -> Example:
    """Prompt (as ``build_inputs`` renders it) + answer + end-of-turn, labelled on the last two parts.

    ``follow_ups`` continue the conversation as further user/assistant turns in the chat template's format,
    each answer and end-of-turn labelled the same way: items about the same images (their prompt and answer;
    their meta says where the answer is read off) or bare (prompt, answer) pairs. ``motion_words`` and
    ``count_words`` ask for derived words on visual tokens (``visual_targets.derived_boxes``); with
    ``motion_words`` a motion's answer is read off the moving object's later blocks rather than looked up
    at both ends of its path.
    """
    tokenizer = loaded.tokenizer
    prompt = loaded.build_inputs(item.prompt, item_images(item)).to("cpu")  # examples stay on the host
    prompt_ids = prompt["input_ids"][0].long()
    pieces = [prompt_ids]
    labels = [torch.full_like(prompt_ids, IGNORE_INDEX)]
    places: list[torch.Tensor] = []
    sources: list[torch.Tensor] = []
    asked_ids: list[torch.Tensor] = []
    sinks: list[torch.Tensor] = []
    ends: list[torch.Tensor] = []
    for i, turn_of in enumerate([item, *follow_ups]):
        asked = turn_of if isinstance(turn_of, TaskItem) else None
        question, answer = (asked.prompt, asked.answer) if asked is not None else turn_of
        if i:
            turn = f"\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
            ids = torch.tensor(tokenizer(turn, add_special_tokens=False)["input_ids"], dtype=torch.long)
            pieces.append(ids)
            labels.append(torch.full_like(ids, IGNORE_INDEX))
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if not answer_ids:
            raise InputError(f"item {item.id} has an empty answer; every training item needs one")
        target = torch.tensor([*answer_ids, tokenizer.eos_token_id], dtype=torch.long)
        pieces.append(target)
        labels.append(target)
        places.append(_token_places(tokenizer, answer_ids, answer_places(asked) if asked else None))
        source = answer_source_words(asked, motion_words) if asked else None
        sources.append(_source_words(tokenizer, len(answer_ids), source))
        asked_ids.append(_source_words(tokenizer, len(answer_ids), asked_words(asked) if asked else None))
        sinks.append(torch.full((len(answer_ids) + 1,), -1.0))  # one per answer token and end-of-turn
        share = sink_share(asked) if asked is not None and len(answer_ids) == 1 else None
        if share is not None:
            sinks[-1][0] = share
        ends.append(torch.zeros(len(answer_ids) + 1, dtype=torch.bool))
        ends[-1][0] = asked is not None and len(answer_ids) == 1 and reads_ends(asked, motion_words)
    input_ids = torch.cat(pieces)
    types = prompt.get("mm_token_type_ids")
    types = torch.zeros_like(prompt_ids) if types is None else types[0].long()
    return Example(
        label=item.task if label is None else label,
        input_ids=input_ids,
        labels=torch.cat(labels),
        mm_token_type_ids=torch.cat([types, torch.zeros(input_ids.shape[0] - types.shape[0], dtype=torch.long)]),
        pixel_values=prompt.get("pixel_values"),
        image_grid_thw=prompt.get("image_grid_thw"),
        visual_targets=visual_targets(
            item,
            prompt.get("image_grid_thw"),
            tokenizer,
            motion_words=motion_words,
            count_words=count_words,
            frame_pairs=pairs_frames(loaded.model.config),
        ),
        answer_places=torch.cat(places),
        answer_sources=torch.cat(sources),
        answer_asked=torch.cat(asked_ids),
        sink_shares=torch.cat(sinks),
        answer_ends=torch.cat(ends),
        token_places=torch.cat(
            [
                prompt_places(item, prompt_ids.tolist(), tokenizer),
                torch.full((input_ids.shape[0] - prompt_ids.shape[0], 3), IGNORE, dtype=torch.long),
            ]
        ),
    )


def _token_places(
    tokenizer: PreTrainedTokenizerBase, answer_ids: Sequence[int], places: Sequence[tuple[int, int, int]] | None
) -> torch.Tensor:
    """``(len(answer_ids) + 1, 3)`` places of an answer's tokens and its end-of-turn: the word tokens take
    ``places`` in order, spaces and end-of-turn get ``IGNORE`` (all ``IGNORE`` if the counts differ)."""
    out = torch.full((len(answer_ids) + 1, 3), IGNORE, dtype=torch.long)
    if places is None:
        return out
    is_word = [bool(tokenizer.decode([i]).strip()) for i in answer_ids]
    if sum(is_word) == len(places):
        out[torch.tensor(is_word + [False])] = torch.tensor(places, dtype=torch.long)
    return out


def _source_words(tokenizer: PreTrainedTokenizerBase, n_answer: int, words: Sequence[str] | None) -> torch.Tensor:
    """``(n_answer + 1, MAX_WORDS)``: ``words``' ids for a one-token answer, ``IGNORE`` otherwise."""
    out = torch.full((n_answer + 1, MAX_WORDS), IGNORE, dtype=torch.long)
    if words is not None and n_answer == 1:
        ids = [tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in words[:MAX_WORDS]]
        out[0, : len(ids)] = torch.tensor(ids)
    return out


def collate(examples: Sequence[Example], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-padded model inputs (as ``build_inputs`` pads) plus ``labels``, ``token_places``, the
    ``ANSWER_GUIDANCE`` fields (labelled tokens in batch order) and, with images, ``visual_targets``; images in
    example order."""
    if not examples:
        raise InputError("collate needs at least one example")
    width = max(len(e) for e in examples)

    def left_pad(rows: list[torch.Tensor], value: int) -> torch.Tensor:
        out = torch.full((len(rows), width), value, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, width - row.shape[0] :] = row
        return out

    batch = {
        "input_ids": left_pad([e.input_ids for e in examples], pad_token_id),
        "attention_mask": left_pad([torch.ones_like(e.input_ids) for e in examples], 0),
        "mm_token_type_ids": left_pad([e.mm_token_type_ids for e in examples], 0),
        "labels": left_pad([e.labels for e in examples], IGNORE_INDEX),
    }
    for name in ANSWER_GUIDANCE:
        if all(getattr(e, name) is not None for e in examples):
            batch[name] = torch.cat([getattr(e, name) for e in examples])
    if all(e.token_places is not None for e in examples):
        batch["token_places"] = torch.full((len(examples), width, 3), IGNORE, dtype=torch.long)
        for i, e in enumerate(examples):
            batch["token_places"][i, width - len(e) :] = e.token_places
    with_images = [e for e in examples if e.pixel_values is not None]
    if with_images:
        batch["pixel_values"] = torch.cat([e.pixel_values for e in with_images])
        batch["image_grid_thw"] = torch.cat([e.image_grid_thw for e in with_images])
        if all(e.visual_targets is not None for e in with_images):
            batch["visual_targets"] = torch.cat([e.visual_targets for e in with_images])
    return batch


def micro_batches(examples: Sequence[Example], max_tokens: int) -> list[list[Example]]:
    """Groups of similar length whose padded size (rows x longest) stays within ``max_tokens``.

    Sorted by length (ties keep their order), so the grouping is a pure function of the examples.
    An example longer than ``max_tokens`` gets a group of its own.
    """
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i]), i))
    groups: list[list[Example]] = []
    for i in order:
        example = examples[i]
        if groups and (len(groups[-1]) + 1) * len(example) <= max_tokens:
            groups[-1].append(example)
        else:
            groups.append([example])
    return groups
