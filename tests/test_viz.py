"""Tests of nlref.viz.attention_map: the paper's Figure 3, as a PNG."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from nlref.nn.nl import init_nonlocal_params, nonlocal_block_forward
from nlref.viz import attention_map

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def clip_attention(rng):
    x = rng.standard_normal((1, 4, 4, 8, 8))
    params, state = init_nonlocal_params(4, mode="embedded_gaussian", dtype=np.float64, rng=0, std=1.0)
    out = nonlocal_block_forward(
        x, params, state, mode="embedded_gaussian", subsample=(1, 2, 2), return_attention=True
    )
    return x, out[3]  # attention (1, 4*8*8, 4*4*4)


def test_clip_map_is_a_png_with_one_panel_per_frame(tmp_path, rng):
    x, att = clip_attention(rng)
    path = attention_map(
        att,
        query=(1, 2, 5),
        query_shape=(4, 8, 8),
        key_shape=(4, 4, 4),
        frames=x[0, 0],
        path=tmp_path / "att.png",
    )
    assert path == tmp_path / "att.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = imread(path)
    assert img.ndim == 3 and img.shape[1] > 1.5 * img.shape[0]  # four frames side by side, two rows
    assert [p.name for p in tmp_path.iterdir()] == ["att.png"]  # no temporary file left behind


def test_figure_layout_titles_and_labels(rng):
    _, att = clip_attention(rng)
    fig = attention_map(att[0], query=(3, 0, 0), query_shape=(4, 8, 8), key_shape=(4, 4, 4), title="Fig. 3")
    panels, colorbar = fig.axes[:4], fig.axes[4:]
    assert len(colorbar) == 1 and colorbar[0].get_ylabel() == "attention weight f / C"
    assert [ax.get_title() for ax in panels] == [f"frame {t}" for t in range(4)]
    assert all(ax.get_xlabel() == "x" and ax.get_ylabel() == "y" for ax in panels)
    assert fig._suptitle.get_text().startswith("Fig. 3")
    # the query marker sits in the query's frame only, at the centre of its pixel
    markers = [len(ax.lines) for ax in panels]
    assert markers == [0, 0, 0, 1]
    np.testing.assert_allclose(panels[3].lines[0].get_xydata(), [[0.5, 0.5]])


def test_frames_are_a_row_of_their_own_and_maps_are_opaque(rng):
    x, att = clip_attention(rng)
    fig = attention_map(att, query=(1, 2, 5), query_shape=(4, 8, 8), key_shape=(4, 4, 4), frames=x[0, 0])
    inputs, maps = fig.axes[:4], fig.axes[4:8]
    assert [ax.get_title() for ax in inputs] == [f"input, frame {t}" for t in range(4)]
    assert [ax.get_title() for ax in maps] == [f"attention, frame {t}" for t in range(4)]
    assert all(len(ax.images) == 1 for ax in fig.axes[:8])  # nothing drawn over the frames
    assert all(ax.images[0].get_alpha() is None for ax in maps)
    assert fig.axes[8].get_ylabel() == "attention weight f / C"


def test_a_map_with_fewer_steps_than_frames_names_the_input_frames_of_each_step(rng):
    x, att = clip_attention(rng)
    frames = np.repeat(x[0, 0], 2, axis=0)  # 8 input frames, 4 map steps: step t is frames 2t, 2t + 1
    fig = attention_map(att, query=(1, 2, 5), query_shape=(4, 8, 8), key_shape=(4, 4, 4), frames=frames)
    inputs, maps = fig.axes[:4], fig.axes[4:8]
    assert [ax.get_title() for ax in inputs] == [f"input, frame {2 * t}" for t in range(4)]
    assert [ax.get_title() for ax in maps] == [f"attention, frames {2 * t}-{2 * t + 1}" for t in range(4)]


def test_uniform_attention_is_drawn_in_one_colour():
    fig = attention_map(np.full(16, 1 / 16), query=(1, 1), query_shape=(4, 4))
    rgba = fig.axes[0].images[0].to_rgba(fig.axes[0].images[0].get_array())
    assert np.ptp(rgba.reshape(-1, 4), axis=0).max() == 0  # every pixel the same colour


def test_long_clips_show_at_most_max_frames_including_the_query_frame(rng):
    row = rng.random(16 * 2 * 2)
    fig = attention_map(row, query=(7, 1, 1), query_shape=(16, 2, 2), max_frames=4)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) <= 5 and "frame 7" in titles


def test_image_and_sequence_maps(tmp_path, rng):
    img_att = rng.random((1, 36, 9))
    p = attention_map(
        img_att,
        query=(2, 3),
        query_shape=(6, 6),
        key_shape=(3, 3),
        frames=rng.random((6, 6, 3)),
        path=tmp_path / "image.png",
    )
    assert imread(p).shape[2] in (3, 4)
    fig = attention_map(rng.random((10, 5)), query=4, query_shape=(10,), key_shape=(5,))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "position" and ax.get_ylabel() == "attention weight f / C"


def test_bad_arguments_are_rejected(tmp_path, rng):
    att = rng.random((1, 16, 4))
    with pytest.raises(ValueError, match="query"):
        attention_map(att, query=(4, 0), query_shape=(4, 4), key_shape=(2, 2))
    with pytest.raises(ValueError, match="query rows"):
        attention_map(att, query=(0, 0), query_shape=(3, 3), key_shape=(2, 2))
    with pytest.raises(ValueError, match="key_shape"):
        attention_map(att, query=(0, 0), query_shape=(4, 4), key_shape=(3, 3))
    with pytest.raises(FileNotFoundError):
        attention_map(
            att, query=(0, 0), query_shape=(4, 4), key_shape=(2, 2), path=tmp_path / "missing" / "a.png"
        )
