"""Dense training signals besides the answers: what each visual token shows, where it sits, where to look.

A model trained from scratch through one answer word per item gets one supervised choice per item and
stays at the answer prior for thousands of steps (docs/embedded-model.md). These losses supervise the
parts of the circuit the answers need, each from what the suite's generators already know:

* *recognition*: each visual token names the words drawn on its block, scored through the tied output
  head, so visual tokens live where the language model reads words;
* *position*: each grid token carries its cell's row and column, read by a fixed random projection;
* *lookup*: at each answer word, the last decoder layer's attention puts its mass on the prompt tokens
  that show that word (a listed word, or visual tokens naming it): the selective attention every task
  needs, supervised directly instead of discovered through the answer alone (for a count, spread over
  the counted objects beside the first token, whose share tells how many);
* *codes*: the last layer's input carries, at both ends of each lookup, what the lookup matches on (a
  grid cell's row and column, an image's number, an object's colour and shape), in fixed random codes;
* *ends position*: for a motion, what each half of the lookup heads reads carries where its end of the
  path is (row and column), so that the answer compares two places it has;
* *motion lookup*: in a lower layer, each block naming a derived word looks at the same object in the
  images (frames) before its own, so that the layers above can compare its place with where it was.

None of them adds parameters, so checkpoints and the exported model are the same with or without them.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb

from hybridkv.models import LoadedModel

from .visual_targets import COL, DERIVED, IGNORE, IMAGE, MAX_IMAGE, MAX_POSITION, MAX_WORDS, ROW, SHOWN_DERIVED

LABEL_IGNORE = -100


def recognition_token_losses(loaded: LoadedModel, visual_tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per labelled visual token: the mean, over the words it shows, of their negative log-likelihood when
    the token is scored against the (tied) word embeddings through the language model's output head.

    Scoring with the output head pulls a token toward the embeddings of its words, the space the language
    model already reads words in.
    """
    word_ids = targets[:, [*range(MAX_WORDS), SHOWN_DERIVED]].to(visual_tokens.device)
    labelled = word_ids[:, 0] != IGNORE
    if not labelled.any():
        return visual_tokens.new_zeros(0)
    logp = torch.log_softmax(loaded.model.lm_head(visual_tokens[labelled]).float(), dim=-1)
    ids = word_ids[labelled]
    valid = ids != IGNORE
    picked = logp.gather(1, ids.clamp(min=0)) * valid
    return -picked.sum(dim=1) / valid.sum(dim=1)


def position_token_losses(loaded: LoadedModel, visual_tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per grid token: the mean cross-entropy of its row and of its column, read from the token by a fixed
    random projection (no trained parameters, so checkpoints and the exported model are unchanged).

    A fixed read-out only asks the vision tower to write the position somewhere linear; the language
    model learns to read it through the answers.
    """
    return _position_losses(visual_tokens, targets[:, ROW : COL + 1])


# Coordinate units per row or column step: a 6-block frame spans 1.5, so the targets stay of the order of
# a visual token's own components.
COORDINATE_STEP = 0.25


def coordinate_token_losses(loaded: LoadedModel, visual_tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per token with a known (row, column): the mean squared error of that row and column as coordinates,
    ``COORDINATE_STEP`` per step, read along two fixed random unit directions.

    The position loss writes a row and a column as classes, which a lookup can match but the layers above
    cannot subtract; which way an object moves is where it is minus where it was (measured: with the
    position classes, the lower layers found the object in earlier frames but did not work out the
    direction). Along a fixed direction, a mean over earlier frames is a mean coordinate, and the
    difference is linear.
    """
    positions = targets[:, ROW : COL + 1].to(visual_tokens.device)
    known = positions[:, 0] != IGNORE
    if not known.any():
        return visual_tokens.new_zeros(0)
    directions = _fixed_readout(4, visual_tokens.shape[-1], 2).to(visual_tokens.device)
    directions = directions / directions.norm(dim=0, keepdim=True)
    read = visual_tokens[known].float() @ directions  # (n, 2)
    return (read - COORDINATE_STEP * positions[known].float()).pow(2).mean(dim=1)


def _position_losses(vectors: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each (row, column) in ``positions`` read from its vector by the fixed
    projection; rows whose position is ``IGNORE`` are left out."""
    positions = positions.to(vectors.device)
    known = positions[:, 0] != IGNORE
    if not known.any():
        return vectors.new_zeros(0)
    readout = _position_readout(vectors.shape[-1]).to(vectors.device)
    logits = torch.einsum("nh,hkp->nkp", vectors[known].float(), readout)
    losses = torch.nn.functional.cross_entropy(
        logits.reshape(-1, MAX_POSITION + 1), positions[known].reshape(-1), reduction="none"
    )
    return losses.view(-1, 2).mean(dim=1)


def image_code_losses(vectors: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
    """Per vector with a known image number (``numbers``, 1-based; 0 or ``IGNORE`` for none): the
    cross-entropy of that number read by a fixed random projection.

    "In image 5" can only be matched against visual tokens that know they belong to image 5, which the
    vision tower cannot tell (it sees one image at a time); the language model can, from the "Image 5:"
    label before each image. Asked of the lookup layer's input, at visual tokens and at the queries that
    name an image, in one code, both sides of the match learn the same number.
    """
    numbers = numbers.to(vectors.device)
    known = (numbers >= 1) & (numbers <= MAX_IMAGE)  # 0 is the prompt's text (a listed word's place)
    if not known.any():
        return vectors.new_zeros(0)
    readout = _fixed_readout(1, vectors.shape[-1], MAX_IMAGE + 1)
    logits = vectors[known].float() @ readout.to(vectors.device)
    return torch.nn.functional.cross_entropy(logits, numbers[known], reduction="none")


def word_code_losses(vectors: torch.Tensor, word_ids: torch.Tensor, vocabulary: int) -> torch.Tensor:
    """Per vector with any known word (``word_ids`` ``(n, words)``, ``IGNORE`` for none): the mean
    cross-entropy of its words read by a fixed random projection onto the ``vocabulary``.

    "What colour is the circle?" is answered by matching the question's "circle" against the visual tokens
    showing a circle. Asked of the lookup layer's input, at visual tokens (the words they show) and at the
    answer position (the words the question names the object by) in one code, both sides of that match
    learn the same vector, as the grid's (row, column) code does for cells. The code is not the output
    head's: the answer position must still say the answer, not the object it was asked about.
    """
    word_ids = word_ids.to(vectors.device)
    valid = word_ids != IGNORE
    known = valid.any(dim=1)
    if not known.any():
        return vectors.new_zeros(0)
    readout = _fixed_readout(2, vectors.shape[-1], vocabulary)
    logp = torch.log_softmax(vectors[known].float() @ readout.to(vectors.device), dim=-1)
    ids, valid = word_ids[known], valid[known]
    picked = logp.gather(1, ids.clamp(min=0)) * valid
    return -picked.sum(dim=1) / valid.sum(dim=1)


def _position_readout(width: int) -> torch.Tensor:
    """``(width, 2, MAX_POSITION + 1)``: one fixed random direction per row and per column index."""
    return _fixed_readout(0, width, 2, MAX_POSITION + 1)


@functools.cache
def _fixed_readout(seed: int, width: int, *classes: int) -> torch.Tensor:
    """``(width, *classes)`` random directions drawn from ``seed``, scaled by ``1/sqrt(width)``: the fixed codes'
    read-outs, drawn once per shape (each term asks for its own at every micro-batch). Callers never write
    to it."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(width, *classes, generator=generator) / width**0.5


def word_tokens(tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """``(vocabulary,)`` bool: tokens with a letter or digit in them, the answer tokens lookup supervises
    (spaces, punctuation and special tokens have no one place to be copied from)."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(tokenizer.all_special_ids)
    return torch.tensor(
        [i not in special and any(ch.isalnum() for ch in piece) for i, piece in enumerate(pieces)], dtype=torch.bool
    )


@dataclass(frozen=True)
class Contents:
    """What each position of a batch shows: ``words`` ``(rows, positions, MAX_WORDS + 1)`` word ids (the last
    one a derived word, ``visual_targets.DERIVED``), ``IGNORE`` where none; ``is_visual`` the visual
    placeholders; ``places`` ``(rows, positions, 3)`` the (image, row, column) of grid tokens, ``IGNORE``
    elsewhere."""

    words: torch.Tensor
    is_visual: torch.Tensor
    places: torch.Tensor


def token_contents(
    batch: dict[str, torch.Tensor],
    visual_targets: torch.Tensor | None,
    visual_token_ids: Sequence[int],
) -> Contents:
    """A text position shows its own token; a visual placeholder shows the words of its block (from
    ``visual_targets``, whose rows follow the placeholders in batch order) and the derived word its
    examples asked for (a direction, a count); answer tokens (labelled) and padding show nothing, so a
    lookup always points into the prompt and the questions.
    """
    input_ids = batch["input_ids"]
    words = torch.full((*input_ids.shape, MAX_WORDS + 1), IGNORE, dtype=torch.long)
    places = torch.full((*input_ids.shape, 3), IGNORE, dtype=torch.long)
    is_visual = torch.isin(input_ids, torch.tensor(list(visual_token_ids), dtype=input_ids.dtype))
    text = (batch["attention_mask"] == 1) & (batch["labels"] == LABEL_IGNORE) & ~is_visual
    words[..., 0] = torch.where(text, input_ids, IGNORE)
    if "token_places" in batch:
        places[text] = batch["token_places"][text]
    if visual_targets is not None and int(is_visual.sum()) == visual_targets.shape[0]:
        words[is_visual] = visual_targets[:, [*range(MAX_WORDS), DERIVED]]
        places[is_visual] = visual_targets[:, [IMAGE, ROW, COL]]
    return Contents(words, is_visual, places)


def lookup_sources(
    contents: Contents,
    rows: torch.Tensor,
    positions: torch.Tensor,
    words: torch.Tensor,
    is_word: torch.Tensor,
    places: torch.Tensor | None = None,
    source_words: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(answer tokens, positions)`` bool: where each answer token (batch row ``rows``, predicted at
    ``positions``, id ``words``) is to be read from, among the positions up to the query.

    A token whose grid cell is known (``places``, (image, row, column) or ``IGNORE``) is read from that
    cell's visual tokens; one whose image alone is known, from the visual tokens of that image showing it.
    Any other word is read from the positions showing it, the visual ones only when any visual token shows
    it (a scene's colour is read from the image, not from "red" in the question).
    Tokens that are not words (``is_word``) or are shown nowhere get no source. ``source_words``
    ``(answer tokens, MAX_WORDS)``, where given, name what the source shows instead of the token itself
    (a frame number is read where the asked object first appears).
    """
    earlier = torch.arange(contents.words.shape[1])[None, :] <= positions[:, None]
    shows = (contents.words[rows] == words[:, None, None]).any(dim=-1) & earlier
    if source_words is not None:  # the source shows these words instead of the answer (all of them)
        given = source_words != IGNORE  # (n, MAX_WORDS)
        found = (contents.words[rows][:, :, :, None] == source_words[:, None, None, :]).any(dim=2)  # (n, T, W)
        shows_given = (found | ~given[:, None, :]).all(dim=-1) & earlier
        shows = torch.where(given.any(dim=1)[:, None], shows_given, shows)
    visual = shows & contents.is_visual[rows]
    sources = torch.where(visual.any(dim=1, keepdim=True), visual, shows)
    if places is not None:
        cell = places[:, 1] != IGNORE
        at_cell = (contents.places[rows] == places[:, None, :]).all(dim=-1) & earlier
        in_image = visual & (contents.places[rows][..., 0] == places[:, None, 0])
        image_only = (places[:, 0] != IGNORE) & ~cell
        sources = torch.where(cell[:, None], at_cell, torch.where(image_only[:, None], in_image, sources))
    return sources & is_word[words][:, None]


def query_attention(
    attention: torch.nn.Module,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
    positions: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The attention distributions ``(n, heads, length)`` of the queries at ``positions`` of batch rows
    ``rows``, recomputed from the layer's inputs as the forward pass computes them, and the ``(n, length)``
    keys each may see. Only these queries are computed, not the layer's whole attention map."""
    batch, length, _ = hidden_states.shape
    head_dim = attention.head_dim
    cos, sin = position_embeddings
    keys = attention.k_proj(hidden_states).view(batch, length, -1, head_dim).transpose(1, 2)
    queries = attention.q_proj(hidden_states[rows, positions]).view(len(rows), -1, head_dim)
    queries = queries.unsqueeze(2)  # (n, heads, 1, head_dim)
    queries, _ = apply_rotary_pos_emb(queries, queries, cos[rows, positions][:, None], sin[rows, positions][:, None])
    _, keys = apply_rotary_pos_emb(keys, keys, cos, sin)
    keys = keys[rows].repeat_interleave(attention.num_key_value_groups, dim=1)  # (n, heads, length, head_dim)
    scores = (queries @ keys.transpose(-1, -2)).squeeze(2).float() * attention.scaling  # (n, heads, length)
    allowed = (attention_mask[rows] == 1) & (torch.arange(length, device=rows.device)[None, :] <= positions[:, None])
    scores = scores.masked_fill(~allowed[:, None, :].to(scores.device), float("-inf"))
    return scores.softmax(dim=-1), allowed


def ends_position_losses(
    attention: torch.nn.Module,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
    positions: torch.Tensor,
    early: torch.Tensor,
    late: torch.Tensor,
    places: torch.Tensor,
) -> torch.Tensor:
    """Per answer token with both ends (a motion): what the two halves of the lookup heads *read*, not only
    where they look. The first half's output (its heads' value mixtures side by side) is asked for the
    (row, column) of the object where it starts, the second half's for where it ends, each as the spread of
    its end's blocks over rows and columns, read by a fixed random projection.

    Measured on the shipped model: the lookup of both ends was learned (loss 0.02 on motion items), yet the
    answer stayed at chance (1.39 nats, ln 4), and a linear probe of those outputs found the direction in
    57% of held-out clips: the heads looked at the right blocks and carried too little of where they are.
    ``places`` ``(n, length, 2)`` is each position's (row, column), ``IGNORE`` where none.
    """
    both = early.any(dim=1) & late.any(dim=1)
    if not both.any():
        return hidden_states.new_zeros(0)
    device = hidden_states.device
    rows, positions = rows[both.to(rows.device)], positions[both.to(positions.device)]
    early, late, places = early[both].to(device), late[both].to(device), places[both].to(device)
    per_head, _ = query_attention(attention, hidden_states, position_embeddings, attention_mask, rows, positions)
    batch, length, _ = hidden_states.shape
    values = attention.v_proj(hidden_states).view(batch, length, -1, attention.head_dim).transpose(1, 2)
    values = values[rows].repeat_interleave(attention.num_key_value_groups, dim=1)  # (n, heads, length, hd)
    read = (per_head.unsqueeze(2) @ values.float()).squeeze(2)  # (n, heads, head_dim)
    half = read.shape[1] // 2
    readout = _fixed_readout(3, half * read.shape[-1], 2, MAX_POSITION + 1).to(device)
    losses = []
    for vectors, sources in ((read[:, :half], early), (read[:, half:], late)):
        logp = torch.log_softmax(torch.einsum("nh,hkp->nkp", vectors.flatten(1), readout), dim=-1)
        known = sources[..., None] & (places != IGNORE)  # (n, length, 2)
        target = torch.zeros_like(logp)  # (n, 2, classes): the end's blocks spread over rows and columns
        target.scatter_add_(2, places.clamp(0, MAX_POSITION).transpose(1, 2), known.transpose(1, 2).float())
        target = target / target.sum(dim=-1, keepdim=True).clamp(min=1)
        losses.append(-(target * logp).sum(dim=-1).mean(dim=-1))
    return (losses[0] + losses[1]) / 2


def lookup_token_losses(
    attention: torch.nn.Module,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
    positions: torch.Tensor,
    sources: torch.Tensor,
    sink_shares: torch.Tensor | None = None,
    late_sources: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per answer token with a source: ``-log`` of the attention mass that ``attention`` (a decoder layer's
    attention, fed ``hidden_states`` and rotary ``position_embeddings`` as in the forward pass) puts on its
    sources, averaged over query heads, from the query at ``positions`` in batch row ``rows``.

    Where ``sink_shares`` (per answer token, negative for none) gives a share, the whole distribution is
    asked for instead: that share on the row's first token, the rest even over the sources (a count; see
    ``visual_targets.sink_share``), scored as the KL divergence from it (0 when met). Where
    ``late_sources`` has any for a token, the first half of the heads is scored on ``sources`` and the
    second half on ``late_sources``, the mean of the two (a motion: where the object starts and where it
    ends, side by side in one layer's output; see :func:`split_ends`).

    Averaging the heads' distributions lets whichever head is closest take the lookup on; the others are
    free. Only the supervised queries are recomputed, not the layer's whole attention map.
    """
    spread = torch.zeros(len(rows), dtype=torch.bool) if sink_shares is None else sink_shares.cpu() >= 0
    keep = sources.any(dim=1) | spread
    if not keep.any():
        return hidden_states.new_zeros(0)
    rows, positions, sources = rows[keep], positions[keep], sources[keep].to(hidden_states.device)
    spread = spread[keep].to(hidden_states.device)
    late = None if late_sources is None else late_sources[keep].to(hidden_states.device)
    per_head, allowed = query_attention(attention, hidden_states, position_embeddings, attention_mask, rows, positions)
    probs = per_head.mean(dim=1)  # (n, length): the heads' mean distribution
    mass = -torch.log((probs * sources).sum(dim=-1).clamp(min=1e-6))
    if late is not None and late.any():
        half = per_head.shape[1] // 2
        early_mass = (per_head[:, :half].mean(dim=1) * sources).sum(dim=-1)
        late_mass = (per_head[:, half:].mean(dim=1) * late).sum(dim=-1)
        ends = -(torch.log(early_mass.clamp(min=1e-6)) + torch.log(late_mass.clamp(min=1e-6))) / 2
        mass = torch.where(late.any(dim=-1), ends, mass)
    if not spread.any():
        return mass
    shares = sink_shares.to(hidden_states.device)[keep].float().clamp(min=0)
    first = allowed.to(probs.device).float().cumsum(dim=-1) == 1  # the row's first real token
    first &= allowed.to(probs.device)
    counted = sources & ~first
    n_counted = counted.sum(dim=-1, keepdim=True).clamp(min=1)
    share = torch.where(counted.any(dim=-1), shares, torch.ones_like(shares))[:, None]
    target = first * share + counted * (1 - share) / n_counted
    kl = (target * (torch.log(target.clamp(min=1e-12)) - torch.log(probs.clamp(min=1e-12)))).sum(dim=-1)
    return torch.where(spread, kl, mass)


def split_ends(sources: torch.Tensor, images: torch.Tensor, ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For the tokens flagged in ``ends``: their sources in the first image (frame) that has any, and
    those in the last; other tokens keep their sources and get no late ones. ``images`` ``(n, length)``
    is each position's image number (``IGNORE`` off images)."""
    on_image = sources & (images != IGNORE)
    big = torch.iinfo(images.dtype).max
    first = torch.where(on_image, images, big).amin(dim=-1, keepdim=True)
    last = torch.where(on_image, images, -1).amax(dim=-1, keepdim=True)
    ends = ends[:, None] & on_image.any(dim=-1, keepdim=True)
    early = torch.where(ends, on_image & (images == first), sources)
    late = ends & on_image & (images == last)
    return early, late


# The lower decoder layer whose attention the motion lookup supervises: its output and the next layer's
# have to turn "where the object was" and "where it is" into a direction before the last layer's input.
MOTION_LOOKUP_LAYER = 1


def motion_lookup_losses(
    attention: torch.nn.Module,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    attention_mask: torch.Tensor,
    contents: Contents,
) -> torch.Tensor:
    """Per visual block naming a derived word with the same object in earlier images: ``-log`` of the
    attention mass ``attention`` (a lower decoder layer's) puts, from that block, on the blocks in earlier
    images that show the same words (colour and shape), averaged over query heads.

    With ``--motion-words`` the lower layers have to label a moving object's blocks with its direction, and
    measured, in 400 steps they did not (the direction read from the last layer's input was right 30% of
    the time, chance 25%): the comparison needs where the object was, which no signal asked them to find.
    A counting scene's blocks (``--count-words``) have no earlier image, so they get no term.
    """
    named = (contents.words[..., MAX_WORDS] != IGNORE) & contents.is_visual
    if not named.any():
        return hidden_states.new_zeros(0)
    rows, positions = torch.nonzero(named, as_tuple=True)
    kind = contents.words[rows, positions, :MAX_WORDS]  # (n, MAX_WORDS)
    images = contents.places[rows][..., 0]  # (n, length)
    same = (contents.words[rows][..., :MAX_WORDS] == kind[:, None, :]).all(dim=-1) & contents.is_visual[rows]
    sources = same & (images != IGNORE) & (images < contents.places[rows, positions, 0][:, None])
    keep = sources.any(dim=1)
    if not keep.any():
        return hidden_states.new_zeros(0)
    device = hidden_states.device
    rows, positions, sources = rows[keep].to(device), positions[keep].to(device), sources[keep].to(device)
    per_head, _ = query_attention(attention, hidden_states, position_embeddings, attention_mask, rows, positions)
    return -torch.log((per_head.mean(dim=1) * sources).sum(dim=-1).clamp(min=1e-6))


# The terms LookupGuide.losses returns, each with the TrainSettings weight it is scaled by.
GUIDANCE_TERMS: dict[str, str] = {
    "lookup": "lookup",
    "query position": "query_position",
    "image code": "image_code",
    "asked image": "image_code",
    "word code": "word_code",
    "asked words": "word_code",
    "ends position": "ends_position",
    "motion lookup": "motion_lookup",
}


class LookupGuide:
    """Lookup losses of a training forward: hooks the last decoder layer's attention to capture its inputs
    (use as a context manager; nothing stays on the model after it), then scores each micro-batch.

    ``terms``: the :data:`GUIDANCE_TERMS` to compute (all by default). A training step passes those it
    weighs, so that a run without a term does not pay for it (the lookup and ends terms recompute the last
    layer's attention; the motion lookup captures a lower layer's inputs too).
    """

    def __init__(self, loaded: LoadedModel, terms: Collection[str] = tuple(GUIDANCE_TERMS)) -> None:
        self.terms = frozenset(terms)
        layers = loaded.model.model.language_model.layers
        self.attention = layers[-1].self_attn
        self.lower_attention = layers[MOTION_LOOKUP_LAYER].self_attn
        self.lm_head = loaded.model.lm_head
        self.is_word = word_tokens(loaded.tokenizer)
        self.visual_ids = (loaded.model.config.image_token_id, loaded.model.config.video_token_id)
        self._inputs: list[dict[str, Any]] = []
        self._lower_inputs: list[dict[str, Any]] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> LookupGuide:
        captures = [(self.attention, self._inputs)]
        if "motion lookup" in self.terms:
            captures.append((self.lower_attention, self._lower_inputs))
        for module, captured in captures:
            handle = module.register_forward_pre_hook(
                lambda module, args, kwargs, captured=captured: captured.append(kwargs), with_kwargs=True
            )
            self._handles.append(handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._inputs.clear()
        self._lower_inputs.clear()

    def losses(
        self,
        batch: dict[str, torch.Tensor],
        visual_targets: torch.Tensor | None,
        words: torch.Tensor,
        *,
        answer_places: torch.Tensor | None = None,
        answer_sources: torch.Tensor | None = None,
        answer_asked: torch.Tensor | None = None,
        sink_shares: torch.Tensor | None = None,
        answer_ends: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-token losses of the last forward on ``batch`` (host tensors, ``labels`` included), whose
        labelled tokens are ``words`` in batch order, by :data:`GUIDANCE_TERMS` name:
        :func:`lookup_token_losses` of the tokens with a source (``lookup``); :func:`query_position_losses`
        of those read off a known grid cell, and of the listed words, each also asked to still name itself
        through the output head (``query position``); :func:`image_code_losses` of the visual tokens
        (``image code``) and of the queries whose image is known (``asked image``); :func:`word_code_losses`
        of the visual tokens showing words (``word code``) and of the queries whose question names its
        object (``asked words``, from ``answer_asked``). Each side of a code is its own term: a batch has a
        few dozen queries against thousands of visual tokens, and in one mean the queries would not count.
        Tokens flagged in ``answer_ends`` are looked up at both ends of their sources' frames
        (:func:`split_ends`), and what each end's heads read is scored by :func:`ends_position_losses`
        (``ends position``). Only the guide's ``terms`` are computed and returned. The captured inputs are
        then released."""
        if not self._inputs:
            return {}
        inputs = self._inputs.pop()
        lower = self._lower_inputs.pop() if self._lower_inputs else None
        self._inputs.clear()
        self._lower_inputs.clear()
        query = torch.nonzero(batch["labels"][:, 1:] != LABEL_IGNORE)
        contents = token_contents(batch, visual_targets, self.visual_ids)
        sources = lookup_sources(
            contents, query[:, 0], query[:, 1], words.cpu(), self.is_word, answer_places, answer_sources
        )
        late = None
        if answer_ends is not None and answer_ends.any():
            sources, late = split_ends(sources, contents.places[query[:, 0]][..., 0], answer_ends)
        hidden = inputs["hidden_states"]
        rows, positions = query[:, 0].to(hidden.device), query[:, 1].to(hidden.device)
        layer_inputs = (
            self.attention,
            hidden,
            inputs["position_embeddings"],
            batch["attention_mask"].to(hidden.device),
        )
        places = answer_places if answer_places is not None else torch.full((len(query), 3), IGNORE)
        visual_hidden, query_hidden = hidden[contents.is_visual.to(hidden.device)], hidden[rows, positions]
        asked = places[:, 0]  # the image a question names; not one found by the answer's own object
        if answer_sources is not None:
            asked = torch.where((answer_sources != IGNORE).any(dim=1), IGNORE, asked)
        asked_ids = answer_asked if answer_asked is not None else torch.full((len(query), MAX_WORDS), IGNORE)
        vocabulary = self.lm_head.out_features

        def query_position() -> torch.Tensor:
            text = (contents.places[..., 1] != IGNORE) & ~contents.is_visual  # listed words carry their own place
            keys = hidden[text.to(hidden.device)]
            cells = query_position_losses(
                torch.cat([query_hidden, keys]), torch.cat([places[:, 1:], contents.places[text][:, 1:]])
            )
            # ... and still name themselves: a lookup that finds a word whose identity the layers below have
            # written over copies nothing (measured: every listed word found, none copied, without this term)
            named = torch.nn.functional.cross_entropy(
                self.lm_head(keys).float(), batch["input_ids"][text].to(hidden.device), reduction="none"
            )
            return torch.cat([cells, named])

        def ends_position() -> torch.Tensor:
            if late is None:
                return hidden.new_zeros(0)
            block_places = contents.places[query[:, 0]][..., 1:]  # (n, length, 2): each position's (row, column)
            return ends_position_losses(*layer_inputs, rows, positions, sources, late, block_places)

        terms = {  # computed only when the guide weighs them
            "lookup": lambda: lookup_token_losses(*layer_inputs, rows, positions, sources, sink_shares, late),
            "query position": query_position,
            "image code": lambda: image_code_losses(visual_hidden, contents.places[contents.is_visual][:, 0]),
            "asked image": lambda: image_code_losses(query_hidden, asked),
            "word code": lambda: word_code_losses(visual_hidden, contents.words[contents.is_visual], vocabulary),
            "asked words": lambda: word_code_losses(query_hidden, asked_ids, vocabulary),
            "ends position": ends_position,
            "motion lookup": lambda: (
                motion_lookup_losses(
                    self.lower_attention,
                    lower["hidden_states"],
                    lower["position_embeddings"],
                    batch["attention_mask"].to(hidden.device),
                    contents,
                )
                if lower is not None
                else hidden.new_zeros(0)
            ),
        }
        return {term: compute() for term, compute in terms.items() if term in self.terms}


def query_position_losses(queries: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Per query with a known cell (``cells``: (row, column) or ``IGNORE``): the cross-entropy of that row
    and column read from the query's input to the lookup layer by the same fixed projection that
    :func:`position_token_losses` reads grid tokens with.

    A lookup needs the question's "row 3, column 2" gathered at the answer position before its attention
    can match it against the grid tokens' positions; trained through the lookup alone, neither side has a
    gradient until the other exists. Asking the query side for the cell in the code the key side already
    uses gives the gathering a signal of its own, and makes the match one between equal codes. A prompt's
    listed words, read as a one-row grid (``visual_targets.text_place``), are asked for their own place the
    same way (the key side of a text lookup, which no vision tower writes).
    """
    return _position_losses(queries, cells)
