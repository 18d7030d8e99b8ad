"""Lookup guidance: where an answer word can be copied from, and the attention mass the last layer puts there."""

from __future__ import annotations

import pytest
import torch

from hybridkv.data import generate_items
from hybridkv.embedded.examples import IGNORE_INDEX, collate, encode
from hybridkv.embedded.guidance import (
    Contents,
    lookup_sources,
    lookup_token_losses,
    token_contents,
    word_tokens,
)
from hybridkv.embedded.visual_targets import IGNORE


def _visual_ids(loaded) -> tuple[int, int]:
    return loaded.model.config.image_token_id, loaded.model.config.video_token_id


def test_sources_are_earlier_prompt_positions_showing_the_word_and_prefer_visual_ones():
    # row 0: text 5 7 9 7 | visual showing (7, 3) | text 7 (after the query); row 1: text only.
    contents = torch.full((2, 7, 2), IGNORE)
    contents[0, :4, 0] = torch.tensor([5, 7, 9, 7])
    contents[0, 4] = torch.tensor([3, 7])
    contents[0, 6, 0] = 7
    contents[1, :3, 0] = torch.tensor([7, 8, 7])
    is_visual = torch.zeros(2, 7, dtype=torch.bool)
    is_visual[0, 4] = True
    is_word = torch.ones(16, dtype=torch.bool)
    is_word[9] = False
    rows, positions, words = torch.tensor([0, 0, 1, 0, 0]), torch.tensor([5, 5, 5, 5, 2]), torch.tensor([7, 5, 7, 9, 7])
    places = torch.full((2, 7, 3), IGNORE)
    sources = lookup_sources(Contents(contents, is_visual, places), rows, positions, words, is_word)
    assert sources[0].nonzero().flatten().tolist() == [4]  # the visual token, not the listed 7s or the later one
    assert sources[1].nonzero().flatten().tolist() == [0]  # no visual 5: the text one
    assert sources[2].nonzero().flatten().tolist() == [0, 2]
    assert not sources[3].any()  # not a word
    assert sources[4].nonzero().flatten().tolist() == [1]  # only positions up to the query


def test_a_known_grid_cell_is_the_only_source_of_its_answer():
    # two visual tokens show 7, at cells (1, 2, 3) and (1, 1, 1); the answer is read at (1, 2, 3)
    words = torch.full((1, 5, 2), IGNORE)
    words[0, :, 0] = torch.tensor([7, 7, 4, 7, 4])
    is_visual = torch.tensor([[False, True, True, True, True]])
    places = torch.full((1, 5, 3), IGNORE)
    places[0, 1:] = torch.tensor([[1, 2, 3], [1, 2, 3], [1, 1, 1], [2, 2, 3]])
    contents = Contents(words, is_visual, places)
    row, query, word = torch.tensor([0, 0]), torch.tensor([4, 4]), torch.tensor([7, 7])
    known = torch.tensor([[1, 2, 3], [IGNORE, IGNORE, IGNORE]])
    sources = lookup_sources(contents, row, query, word, torch.ones(8, dtype=torch.bool), known)
    assert sources[0].nonzero().flatten().tolist() == [1, 2]  # the cell's tokens, whatever they show
    assert sources[1].nonzero().flatten().tolist() == [1, 3]  # unknown place: every visual 7
    image_only = torch.tensor([[2, IGNORE, IGNORE]])
    words[0, 4, 0] = 7
    sources = lookup_sources(contents, row[:1], query[:1], word[:1], torch.ones(8, dtype=torch.bool), image_only)
    assert sources[0].nonzero().flatten().tolist() == [4]  # the 7 in image 2 only


def test_contents_show_prompt_tokens_and_visual_words_but_not_answers_or_padding(loaded):
    (grid,) = generate_items("grid", "train", 1, seed=5, rows=3, cols=3)
    (text,) = generate_items("text_copy", "train", 1, seed=4, distractor_prob=0.0)
    examples = [encode(loaded, grid), encode(loaded, text)]
    batch = collate(examples, loaded.tokenizer.pad_token_id)
    visual_targets = batch.pop("visual_targets")
    found = token_contents(batch, visual_targets, _visual_ids(loaded))
    contents, is_visual = found.words, found.is_visual
    assert torch.equal(contents[is_visual][:, :2], visual_targets[:, :2])
    assert (contents[is_visual][:, 2] == IGNORE).all()  # no derived word unless asked for
    text_positions = ~is_visual & (batch["attention_mask"] == 1) & (batch["labels"] == IGNORE_INDEX)
    assert torch.equal(contents[..., 0][text_positions], batch["input_ids"][text_positions])
    assert (contents[batch["labels"] != IGNORE_INDEX] == IGNORE).all()
    assert (contents[batch["attention_mask"] == 0] == IGNORE).all()
    # the copied word of the text item is shown in its list; the grid answer by some grid cell
    query = torch.nonzero(batch["labels"][:, 1:] != IGNORE_INDEX)
    words = batch["labels"][:, 1:][batch["labels"][:, 1:] != IGNORE_INDEX]
    is_word = word_tokens(loaded.tokenizer)
    places = batch["answer_places"]
    sources = lookup_sources(found, query[:, 0], query[:, 1], words, is_word, places)
    first_answer = [int((query[:, 0] == row).nonzero()[0]) for row in range(2)]
    assert sources[first_answer[1]].any() and not is_visual[1][sources[first_answer[1]]].any()
    asked = (grid.meta["row"], grid.meta["col"])
    assert places[first_answer[0]].tolist() == [1, *asked]
    cell = found.places[0][sources[first_answer[0]]]  # the asked cell's tokens: one 28 px token or a 2x2 block
    assert len(cell) in (1, 4) and (cell == torch.tensor([1, *asked])).all()
    assert (found.places[0][is_visual[0]] == torch.tensor([1, *asked])).all(dim=1).sum() == len(cell)


def test_lookup_loss_is_minus_log_of_the_last_layers_own_attention_mass(loaded):
    (grid,) = generate_items("grid", "train", 1, seed=5, rows=3, cols=3)
    (text,) = generate_items("text_copy", "train", 1, seed=4, distractor_prob=0.0)
    batch = collate([encode(loaded, grid), encode(loaded, text)], loaded.tokenizer.pad_token_id)
    batch.pop("visual_targets")
    batch.pop("answer_places")
    labels = batch.pop("labels")
    model = loaded.model
    attention = model.model.language_model.layers[-1].self_attn
    captured = []
    handle = attention.register_forward_pre_hook(lambda m, a, kw: captured.append(kw), with_kwargs=True)
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model.model(**batch, use_cache=False, output_attentions=True)
    finally:
        handle.remove()
        model.set_attn_implementation(before)
    weights = out.attentions[-1]  # (rows, heads, queries, keys), as the layer computed it
    query = torch.nonzero(labels[:, 1:] != IGNORE_INDEX)
    generator = torch.Generator().manual_seed(0)
    sources = torch.rand(len(query), weights.shape[-1], generator=generator) < 0.3
    sources[:, 0] = False  # position 0 is padding in the shorter row: the model gives it weight 0 too
    inputs = (captured[0]["hidden_states"], captured[0]["position_embeddings"], batch["attention_mask"])

    def losses_of(**late):
        with torch.no_grad():
            return lookup_token_losses(attention, *inputs, query[:, 0], query[:, 1], sources, **late)

    losses = losses_of()
    expected_mass = (weights[query[:, 0], :, query[:, 1]] * sources[:, None, :]).sum(-1).mean(-1)
    kept = sources.any(dim=1)
    assert losses.shape == (int(kept.sum()),)
    torch.testing.assert_close(losses, -torch.log(expected_mass[kept]), rtol=1e-4, atol=1e-5)
    # with late sources, each half of the heads is scored on its own set
    late = torch.zeros_like(sources)
    late[0, 1:4] = True
    split = losses_of(late_sources=late)
    per_head = weights[query[0, 0], :, query[0, 1]]  # (heads, keys)
    half = per_head.shape[0] // 2
    early_mass = (per_head[:half].mean(0) * sources[0]).sum()
    late_mass = (per_head[half:].mean(0) * late[0]).sum()
    expected = -(torch.log(early_mass) + torch.log(late_mass)) / 2
    torch.testing.assert_close(split[0], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(split[1:], losses[1:])  # tokens without late sources are unchanged


def test_lookup_loss_trains_the_last_layers_queries_only_when_asked(loaded):
    from hybridkv.embedded.training import LossWeights, TrainSettings, train_step_loss

    (text,) = generate_items("text_copy", "train", 1, seed=4, distractor_prob=0.0)
    examples = [encode(loaded, text)]
    q_proj = loaded.model.model.language_model.layers[-1].self_attn.q_proj.weight
    grads, losses = [], []
    for weight in (0.0, 1.0):
        loaded.model.zero_grad(set_to_none=True)
        loss, per_label = train_step_loss(loaded, examples, 4096, LossWeights(lookup=weight))
        assert ("(lookup)" in per_label) == (weight > 0)
        grads.append(q_proj.grad.clone())
        losses.append(loss)
    loaded.model.zero_grad(set_to_none=True)
    attention = loaded.model.model.language_model.layers[-1].self_attn
    assert not attention._forward_pre_hooks and not loaded.model.model.visual._forward_hooks  # nothing left behind
    assert losses[0] == pytest.approx(losses[1])  # the step loss stays the answers'
    assert not torch.allclose(grads[0], grads[1])
    assert per_label["(lookup)"] > 0
    with pytest.raises(Exception, match="lookup_loss"):
        TrainSettings(lookup_loss=-1.0)


def test_query_position_loss_reads_the_asked_cell_at_the_answer_position(loaded):
    # the readout reads cells by the fixed code: a vector built from the code's own directions scores best
    from hybridkv.embedded.guidance import _position_readout, query_position_losses
    from hybridkv.embedded.training import LossWeights, train_step_loss

    readout = _position_readout(256)
    cells = torch.tensor([[3, 2], [IGNORE, IGNORE], [1, 5]])
    right = torch.stack([10 * (readout[:, 0, r] + readout[:, 1, c]) for r, c in ([3, 2], [0, 0], [1, 5])])
    wrong = torch.stack([10 * (readout[:, 0, r] + readout[:, 1, c]) for r, c in ([2, 3], [0, 0], [5, 1])])
    assert query_position_losses(right, cells).shape == (2,)
    assert (query_position_losses(right, cells) < query_position_losses(wrong, cells)).all()

    (grid,) = generate_items("grid", "train", 1, seed=5, rows=3, cols=3)
    (scene,) = generate_items("attribute", "train", 1, seed=5)
    _, per_label = train_step_loss(loaded, [encode(loaded, grid)], 4096, LossWeights(query_position=1.0))
    assert "(query position)" in per_label and "(lookup)" not in per_label
    loaded.model.zero_grad(set_to_none=True)
    _, per_label = train_step_loss(loaded, [encode(loaded, scene)], 4096, LossWeights(query_position=1.0))
    assert "(query position)" not in per_label  # no grid cell to read off
    loaded.model.zero_grad(set_to_none=True)


def test_image_codes_are_asked_of_every_visual_token_and_of_queries_naming_an_image(loaded):
    from hybridkv.embedded.guidance import image_code_losses
    from hybridkv.embedded.training import LossWeights, train_step_loss

    numbers = torch.tensor([1, IGNORE, 3, 65, 0])
    assert image_code_losses(torch.randn(5, 256), numbers).shape == (2,)  # unknown, out of range and text left out
    (several,) = generate_items("multi_image", "train", 1, seed=5, min_images=3, max_images=3)
    (text,) = generate_items("text_copy", "train", 1, seed=4, distractor_prob=0.0)
    example = encode(loaded, several)
    _, per_label = train_step_loss(loaded, [example], 4096, LossWeights(image_code=1.0))
    assert per_label["(image code)"] > 0 and per_label["(asked image)"] > 0  # each side a term of its own
    loaded.model.zero_grad(set_to_none=True)
    _, per_label = train_step_loss(loaded, [encode(loaded, text)], 4096, LossWeights(image_code=1.0))
    assert "(image code)" not in per_label  # no image, no image named
    loaded.model.zero_grad(set_to_none=True)


def test_a_listed_word_is_read_from_its_place_in_the_list(loaded):
    import numpy as np

    from hybridkv.embedded.readouts import as_readout_item

    (text,) = generate_items("text_copy", "train", 1, seed=4, distractor_prob=0.0)
    example = encode(loaded, text)
    placed = (example.token_places[:, 1] != IGNORE).nonzero().flatten()
    listed = [loaded.tokenizer.decode([int(example.input_ids[i])]) for i in placed]
    assert listed == text.meta["words"]  # each listed word at (text, row 1, its number)
    assert example.token_places[placed].tolist() == [[0, 1, k] for k in range(1, len(listed) + 1)]
    batch = collate([example], loaded.tokenizer.pad_token_id)
    found = token_contents(batch, None, _visual_ids(loaded))
    query = torch.nonzero(batch["labels"][:, 1:] != IGNORE_INDEX)
    words = batch["labels"][:, 1:][batch["labels"][:, 1:] != IGNORE_INDEX]
    sources = lookup_sources(
        found, query[:, 0], query[:, 1], words, word_tokens(loaded.tokenizer), batch["answer_places"]
    )
    assert sources[0].nonzero().flatten().tolist() == [int(placed[text.meta["item"] - 1])]
    repeat = encode(loaded, as_readout_item(text, np.random.default_rng(0)))
    known = repeat.answer_places[repeat.answer_places[:, 0] != IGNORE]
    assert known.tolist() == [[0, 1, k] for k in range(1, len(listed) + 1)]


def test_follow_up_questions_know_where_their_answers_are_read(loaded):
    import numpy as np

    from hybridkv.embedded.questions import follow_ups

    (grid,) = generate_items("grid", "train", 1, seed=7, rows=4, cols=4)
    extra = follow_ups(grid, 2, np.random.default_rng(0))
    assert extra and all(e.images == grid.images for e in extra)
    example = encode(loaded, grid, follow_ups=[*extra, ("Read row 1.", " ".join(grid.meta["grid"]["cells"][0]))])
    known = example.answer_places[example.answer_places[:, 0] != IGNORE].tolist()
    asked = [[1, q.meta["row"], q.meta["col"]] for q in (grid, *extra)]
    assert known == asked  # the bare read-out pair at the end has no places


def test_a_count_asks_for_a_share_on_the_first_token_and_the_rest_spread_over_the_counted_tokens(loaded):
    (grid,) = generate_items("grid", "train", 1, seed=5, rows=3, cols=3)
    batch = collate([encode(loaded, grid)], loaded.tokenizer.pad_token_id)
    for name in ("visual_targets", "answer_places", "answer_sources", "answer_asked", "sink_shares"):
        batch.pop(name)
    labels = batch.pop("labels")
    attention = loaded.model.model.language_model.layers[-1].self_attn
    captured = []
    handle = attention.register_forward_pre_hook(lambda m, a, kw: captured.append(kw), with_kwargs=True)
    try:
        with torch.no_grad():
            loaded.model.model(**batch, use_cache=False)
    finally:
        handle.remove()
    query = torch.nonzero(labels[:, 1:] != IGNORE_INDEX)[:2]  # the answer word and the end-of-turn
    length = batch["input_ids"].shape[1]
    sources = torch.zeros(2, length, dtype=torch.bool)
    sources[0, 5:9] = True  # four counted tokens; the second query counts nothing (a count of 0)
    inputs = (captured[0]["hidden_states"], captured[0]["position_embeddings"], batch["attention_mask"])

    def losses(shares):
        with torch.no_grad():
            return lookup_token_losses(attention, *inputs, query[:, 0], query[:, 1], sources, shares)

    spread = losses(torch.tensor([0.5, 1.0]))
    assert spread.shape == (2,) and (spread >= 0).all()  # a KL divergence each; the empty count still counts
    mass_only = losses(torch.tensor([-1.0, -1.0]))
    assert mass_only.shape == (1,)  # without shares only tokens with a source are scored, by mass
    assert not torch.allclose(losses(torch.tensor([0.2, 1.0]))[0], spread[0])  # the share is part of the target


def test_words_naming_the_asked_object_and_a_counts_share_reach_the_examples(loaded):
    from hybridkv.embedded.visual_targets import asked_words, sink_share

    (attribute,) = generate_items("attribute", "train", 1, seed=5)
    target = attribute.meta["objects"][attribute.meta["target"]]
    named = target["shape"] if attribute.meta["ask"] == "colour" else target["colour"]
    assert asked_words(attribute) == (named,) and sink_share(attribute) is None
    (counting,) = generate_items("counting", "train", 1, seed=5)
    assert asked_words(counting) == (counting.meta["colour"], counting.meta["shape"])
    assert sink_share(counting) == pytest.approx(1 / (int(counting.answer) + 1))
    (grid,) = generate_items("grid", "train", 1, seed=5, rows=3, cols=3)
    assert asked_words(grid) is None and sink_share(grid) is None
    example = encode(loaded, counting)
    assert example.sink_shares.tolist() == pytest.approx([sink_share(counting), -1.0])
    first = example.answer_asked[0].tolist()
    assert first == [loaded.tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in asked_words(counting)]
    assert (example.answer_asked[1:] == IGNORE).all()
    (grid,) = generate_items("grid", "train", 1, seed=5, rows=3, cols=3)
    readout = ("Read row 1.", " ".join(grid.meta["grid"]["cells"][0]))
    example = encode(loaded, counting, follow_ups=[readout])  # one entry per labelled token, however many
    n_labelled = int((example.labels != IGNORE_INDEX).sum())
    assert example.sink_shares.shape == (n_labelled,) and example.answer_asked.shape[0] == n_labelled


def test_word_codes_are_asked_of_visual_tokens_and_of_queries_naming_an_object(loaded):
    from hybridkv.embedded.guidance import word_code_losses
    from hybridkv.embedded.training import LossWeights, train_step_loss

    ids = torch.tensor([[3, 7], [IGNORE, IGNORE], [5, IGNORE]])
    assert word_code_losses(torch.randn(3, 64), ids, vocabulary=10).shape == (2,)
    (scene,) = generate_items("attribute", "train", 1, seed=5)
    (text,) = generate_items("text_copy", "train", 1, seed=4, distractor_prob=0.0)
    _, per_label = train_step_loss(loaded, [encode(loaded, scene)], 4096, LossWeights(word_code=1.0))
    assert per_label["(word code)"] > 0 and per_label["(asked words)"] > 0
    loaded.model.zero_grad(set_to_none=True)
    _, per_label = train_step_loss(loaded, [encode(loaded, text)], 4096, LossWeights(word_code=1.0))
    assert "(word code)" not in per_label  # no visual token, no object named
    loaded.model.zero_grad(set_to_none=True)


def test_a_motion_is_looked_up_where_its_object_starts_and_where_it_ends(loaded):
    from hybridkv.embedded.guidance import split_ends
    from hybridkv.embedded.visual_targets import ROW, reads_ends

    images = torch.tensor([[IGNORE, 1, 1, 2, 3, 3, IGNORE]])
    sources = torch.tensor([[False, True, False, True, True, True, False]])
    early, late = split_ends(sources, images, torch.tensor([True]))
    assert early.tolist() == [[False, True, False, False, False, False, False]]
    assert late.tolist() == [[False, False, False, False, True, True, False]]
    early, late = split_ends(sources, images, torch.tensor([False]))  # unflagged: sources kept, no late ones
    assert torch.equal(early, sources) and not late.any()

    (clip,) = generate_items("video", "train", 1, seed=3, questions=("motion",))
    assert reads_ends(clip)
    example = encode(loaded, clip)
    assert example.answer_ends.tolist() == [True, False]
    assert (example.visual_targets[:, ROW] >= 1).all()  # every frame block knows where in the frame it is
    _, per_label = train_step_loss_with_lookup(loaded, example)
    assert per_label["(lookup)"] > 0


def train_step_loss_with_lookup(loaded, example):
    from hybridkv.embedded.training import LossWeights, train_step_loss

    try:
        return train_step_loss(loaded, [example], 4096, LossWeights(lookup=1.0))
    finally:
        loaded.model.zero_grad(set_to_none=True)


def test_a_motions_two_halves_of_heads_are_asked_where_each_end_is(loaded):
    from hybridkv.embedded.training import LossWeights, train_step_loss

    (clip,) = generate_items("video", "train", 1, seed=3, questions=("motion",))
    (appear,) = generate_items("video", "train", 1, seed=3, questions=("appear",))
    v_proj = loaded.model.model.language_model.layers[-1].self_attn.v_proj.weight
    try:
        _, per_label = train_step_loss(loaded, [encode(loaded, clip)], 4096, LossWeights(ends_position=1.0))
        assert per_label["(ends position)"] > 0  # a spread over up to 33 rows and columns: never 0 untrained
        assert v_proj.grad is not None and v_proj.grad.abs().sum() > 0  # it trains what the heads read
        loaded.model.zero_grad(set_to_none=True)
        _, per_label = train_step_loss(loaded, [encode(loaded, appear)], 4096, LossWeights(ends_position=1.0))
        assert "(ends position)" not in per_label  # only a motion has two ends
    finally:
        loaded.model.zero_grad(set_to_none=True)


def test_with_motion_words_a_motion_is_read_off_the_moving_objects_later_blocks(loaded):
    from hybridkv.data.palette import BLOCK_PX
    from hybridkv.embedded.training import LossWeights, train_step_loss
    from hybridkv.embedded.visual_targets import DERIVED, IMAGE, reads_ends

    (clip,) = generate_items("video", "train", 1, seed=3, questions=("motion",))
    target = clip.meta["objects"][0]
    step = max(abs(target["vx"]), abs(target["vy"]))
    assert not reads_ends(clip, motion_words=True)
    example = encode(loaded, clip, motion_words=True)
    assert example.answer_ends.tolist() == [False, False]
    assert (example.answer_sources == IGNORE).all()  # read as shown: the blocks naming the direction
    batch = collate([example], loaded.tokenizer.pad_token_id)
    visual_targets = batch.pop("visual_targets")
    contents = token_contents(batch, visual_targets, _visual_ids(loaded))
    query = torch.nonzero(batch["labels"][:, 1:] != IGNORE_INDEX)
    words = batch["labels"][:, 1:][batch["labels"][:, 1:] != IGNORE_INDEX]
    sources = lookup_sources(
        contents, query[:, 0], query[:, 1], words, word_tokens(loaded.tokenizer), batch["answer_places"]
    )
    frames = sorted(set(contents.places[0][sources[0]][:, 0].tolist()))
    first_moved = -(-BLOCK_PX // step)  # the first frame (0-based) a whole block from the start
    assert frames == list(range(first_moved + 1, len(clip.video) + 1))  # image numbers are 1-based
    assert contents.is_visual[0][sources[0]].all()  # not the "left, right, up or down" of the question
    named = visual_targets[visual_targets[:, DERIVED] != IGNORE]
    assert {loaded.tokenizer.decode([i]) for i in named[:, DERIVED].tolist()} == {clip.answer}
    assert set(named[:, IMAGE].tolist()) == set(frames)
    # without the option the direction is not shown anywhere and the ends are looked up as before
    plain = collate([encode(loaded, clip)], loaded.tokenizer.pad_token_id)
    assert (plain["visual_targets"][:, DERIVED] == IGNORE).all()
    try:
        weights = LossWeights(lookup=1.0, word_code=1.0)
        _, with_words = train_step_loss(loaded, [example], 4096, weights)
        loaded.model.zero_grad(set_to_none=True)
        _, without = train_step_loss(loaded, [encode(loaded, clip)], 4096, weights)
        assert with_words["(word code)"] != without["(word code)"]  # the direction is asked of the moving blocks
    finally:
        loaded.model.zero_grad(set_to_none=True)


def test_a_moving_block_is_asked_to_look_at_its_object_in_earlier_frames_in_a_lower_layer(loaded):
    from hybridkv.embedded.guidance import MOTION_LOOKUP_LAYER, LookupGuide
    from hybridkv.embedded.training import LossWeights, train_step_loss

    (clip,) = generate_items("video", "train", 1, seed=3, questions=("motion",))
    layers = loaded.model.model.language_model.layers
    lower_q = layers[MOTION_LOOKUP_LAYER].self_attn.q_proj.weight
    example = encode(loaded, clip, motion_words=True)
    try:
        train_step_loss(loaded, [example], 4096, LossWeights())
        answers_only = lower_q.grad.clone()
        loaded.model.zero_grad(set_to_none=True)
        _, per_label = train_step_loss(loaded, [example], 4096, LossWeights(motion_lookup=1.0))
        assert per_label["(motion lookup)"] > 0
        assert not torch.allclose(lower_q.grad, answers_only)  # the term reaches the lower layer's queries
        loaded.model.zero_grad(set_to_none=True)
        _, per_label = train_step_loss(loaded, [encode(loaded, clip)], 4096, LossWeights(motion_lookup=1.0))
        assert "(motion lookup)" not in per_label  # no direction asked for, no block to supervise
    finally:
        loaded.model.zero_grad(set_to_none=True)
    with LookupGuide(loaded, ["lookup"]) as guide:  # the lower layer is hooked only when its term is weighed
        assert len(guide._handles) == 1
    assert not layers[MOTION_LOOKUP_LAYER].self_attn._forward_pre_hooks


def test_motion_lookup_sources_are_the_same_objects_blocks_in_earlier_images():
    from hybridkv.embedded.guidance import motion_lookup_losses

    # positions: 0 text, 1-2 image 1 (red circle, blue square), 3-4 image 2 (red circle moved, blue square)
    words = torch.full((1, 5, 3), IGNORE)
    words[0, 1, :2] = words[0, 3, :2] = torch.tensor([10, 11])
    words[0, 2, :2] = words[0, 4, :2] = torch.tensor([12, 13])
    words[0, 3, 2] = 20  # the moved circle's block names its direction
    places = torch.full((1, 5, 3), IGNORE)
    places[0, 1:3, 0], places[0, 3:5, 0] = 1, 2
    contents = Contents(words, torch.tensor([[False, True, True, True, True]]), places)

    class Uniform(torch.nn.Module):  # attention over every key alike: the mass on the sources is 1/4
        head_dim, num_key_value_groups, scaling = 2, 1, 1.0

        def __init__(self):
            super().__init__()
            self.q_proj = self.k_proj = torch.nn.Linear(2, 2, bias=False)
            torch.nn.init.zeros_(self.q_proj.weight)

    hidden = torch.zeros(1, 5, 2)
    rotary = (torch.ones(1, 5, 2), torch.zeros(1, 5, 2))
    loss = motion_lookup_losses(Uniform(), hidden, rotary, torch.ones(1, 5), contents)
    assert loss.shape == (1,) and torch.allclose(loss, torch.log(torch.tensor([4.0])))  # position 1 of 0-3
