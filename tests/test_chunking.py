"""Chunk layouts: image tiles and text runs partition a head's cold tokens, and the layout of a Qwen-VL
prompt places every visual token in its image's grid."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridkv.cache.chunking import chunk_groups, tile_side
from hybridkv.models.layout import TEXT, merged_grid_layout

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def prompt_layout(parts: list[tuple[str, int, int]]) -> torch.Tensor:
    """[L, 3] for parts ('text', n, _) or ('image', height, width) in prompt order."""
    rows, image = [], 0
    for kind, a, b in parts:
        if kind == "text":
            rows += [(TEXT, TEXT, TEXT)] * a
        else:
            rows += [(image, r, c) for r in range(a) for c in range(b)]
            image += 1
    return torch.tensor(rows, dtype=torch.long)


@SETTINGS
@given(
    parts=st.lists(
        st.one_of(
            st.tuples(st.just("text"), st.integers(1, 20), st.just(0)),
            st.tuples(st.just("image"), st.integers(1, 9), st.integers(1, 9)),
        ),
        min_size=1,
        max_size=5,
    ),
    chunk=st.integers(1, 20),
    drop=st.integers(0, 7),
)
def test_groups_partition_the_body_and_never_mix_images_or_text(parts, chunk, drop):
    layout = prompt_layout(parts)
    positions = torch.arange(layout.shape[0])
    positions = positions[positions % 8 != drop] if drop else positions  # a body with holes (a core)
    order, sizes = chunk_groups(positions, layout, chunk)
    assert sorted(order.tolist()) == positions.tolist()
    assert sum(sizes) == positions.shape[0] and all(1 <= n <= chunk for n in sizes)
    side = tile_side(chunk)
    start = 0
    for n in sizes:
        members = layout[order[start : start + n]]
        assert order[start : start + n].tolist() == sorted(order[start : start + n].tolist())
        assert len(set(members[:, 0].tolist())) == 1  # one image, or text only
        if members[0, 0] >= 0:  # one tile of that image
            assert len(set((members[:, 1] // side).tolist())) == 1
            assert len(set((members[:, 2] // side).tolist())) == 1
        start += n


def test_an_image_is_cut_into_square_tiles_and_text_into_runs():
    layout = prompt_layout([("text", 5, 0), ("image", 4, 6), ("text", 3, 0)])
    order, sizes = chunk_groups(torch.arange(layout.shape[0]), layout, 4)
    assert sizes == [4, 1, 4, 4, 4, 4, 4, 4, 3]  # a 4x6 image is six 2x2 tiles
    first_tile = layout[order[5:9], 1:].tolist()
    assert first_tile == [[0, 0], [0, 1], [1, 0], [1, 1]]


def test_without_a_layout_chunks_are_runs():
    order, sizes = chunk_groups(torch.arange(3, 40), None, 16)
    assert order.tolist() == list(range(3, 40)) and sizes == [16, 16, 5]


def test_qwen_layout_follows_the_processor_grids(tiny):
    from hybridkv.models.testing import synthetic_image

    loaded = tiny("qwen2_5_vl")
    images = [synthetic_image(224, 112, seed=0), synthetic_image(112, 168, seed=1)]
    inputs = loaded.build_inputs("Describe both.", images)
    layout = merged_grid_layout(inputs, loaded.model.config)
    visual = loaded.token_types(inputs)[0] != 0
    assert torch.equal(layout[0, :, 0] >= 0, visual)
    merge = loaded.model.config.vision_config.spatial_merge_size
    for image, (_, h, w) in enumerate(inputs["image_grid_thw"].tolist()):
        mine = layout[0][layout[0, :, 0] == image]
        assert mine.shape[0] == (h // merge) * (w // merge)
        assert int(mine[:, 1].max()) == h // merge - 1 and int(mine[:, 2].max()) == w // merge - 1
    text_only = loaded.build_inputs("No image here.")
    assert bool((merged_grid_layout(text_only, loaded.model.config) == TEXT).all())
