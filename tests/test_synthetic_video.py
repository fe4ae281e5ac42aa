"""The synthetic same-or-different-colour video task: deterministic, balanced, disjoint splits."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nlref.data.synthetic_video import make_clips, palette, temporal_gap


def _digest(clip) -> str:
    return hashlib.sha1(np.ascontiguousarray(clip).tobytes()).hexdigest()


def test_same_seed_split_and_index_give_the_same_clip():
    a, la = make_clips(6, seed=3)
    b, lb = make_clips(6, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)


def test_clip_depends_only_on_its_index_not_on_the_batch_it_is_drawn_in():
    whole, lw = make_clips(7, seed=1)
    part, lp = make_clips(3, seed=1, start=4)
    np.testing.assert_array_equal(whole[4:], part)
    np.testing.assert_array_equal(lw[4:], lp)


def test_different_seeds_give_different_clips():
    a, _ = make_clips(2, seed=0)
    b, _ = make_clips(2, seed=1)
    assert not np.array_equal(a, b)


def test_train_val_and_test_splits_share_no_clip():
    digests = {}
    for split in ("train", "val", "test"):
        clips, _ = make_clips(60, seed=0, split=split, n_frames=8, size=8, mark_size=2, t_a=1, t_b=5)
        digests[split] = {_digest(c) for c in clips}
        assert len(digests[split]) == 60
    assert not digests["train"] & digests["val"]
    assert not digests["train"] & digests["test"]
    assert not digests["val"] & digests["test"]


def test_labels_are_exactly_balanced_and_colours_agree_with_labels():
    _, labels, info = make_clips(400, seed=2, n_frames=8, size=8, mark_size=2, t_a=1, t_b=5, return_info=True)
    assert labels.sum() == 200
    same = info["colour_a"] == info["colour_b"]
    np.testing.assert_array_equal(same, labels == 1)


def test_different_colour_is_uniform_over_the_other_colours():
    _, labels, info = make_clips(
        1400, seed=5, n_frames=8, size=8, mark_size=2, t_a=1, t_b=5, return_info=True
    )
    diff = labels == 0
    # the offset c2 - c1 (mod 8) of a "different" pair is uniform over 1..7: 100 expected each
    counts = np.bincount((info["colour_b"][diff] - info["colour_a"][diff]) % 8, minlength=8)
    assert counts[0] == 0
    assert counts[1:].min() > 60 and counts[1:].max() < 140
    assert np.bincount(info["colour_a"], minlength=8).min() > 120  # c1 uniform over 8 (175 expected)


def test_marks_have_the_palette_colour_in_their_frames_only():
    clips, labels, info = make_clips(
        20, seed=4, return_info=True
    )  # 3 x 16 x 32 x 32, marks in frames 4-5, 10-11
    colours = palette(3, 8)
    assert clips.shape == (20, 3, 16, 32, 32) and clips.dtype == np.float32
    for k in range(20):
        (ya, xa), (yb, xb) = info["pos_a"][k], info["pos_b"][k]
        assert info["t_a"][k] == 4 and info["t_b"][k] == 10
        a = clips[k][:, 4:6, ya : ya + 4, xa : xa + 4]
        b = clips[k][:, 10:12, yb : yb + 4, xb : xb + 4]
        np.testing.assert_array_equal(
            a, np.broadcast_to(colours[info["colour_a"][k]][:, None, None, None], a.shape)
        )
        np.testing.assert_array_equal(
            b, np.broadcast_to(colours[info["colour_b"][k]][:, None, None, None], b.shape)
        )
        # the squares do not overlap
        assert abs(ya - yb) >= 4 or abs(xa - xb) >= 4
        # every other frame is pure noise of std 0.1: no value near +-1
        other = np.delete(clips[k], [4, 5, 10, 11], axis=1)
        assert np.abs(other).max() < 0.7
        assert 0.09 < other.std() < 0.11


def test_nearest_mark_frames_are_further_apart_than_the_c2d_receptive_field():
    # tiny C2D: pool1 (3 frames, stride 1) then pool2 (3 frames, stride 2) -> 3 + 2 * 1 = 5 frames
    assert temporal_gap(4, 10, 2) == 6 > 5


def test_grey_palette_and_one_channel_clips():
    clips, _ = make_clips(2, channels=1, n_colours=4, seed=0)
    assert clips.shape == (2, 1, 16, 32, 32)
    np.testing.assert_allclose(palette(1, 4)[:, 0], [-1, -1 / 3, 1 / 3, 1])


def test_clips_move_to_the_requested_backend(xp):
    clips, labels = make_clips(
        2, seed=0, n_frames=8, size=8, mark_size=2, t_a=1, t_b=5, xp=xp, dtype=np.float64
    )
    assert isinstance(clips, xp.ndarray) and clips.dtype == xp.float64 and labels.dtype == xp.int64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "validation"}, "split"),
        ({"t_a": 12, "t_b": 10}, "t_a"),
        ({"size": 6}, "size"),
        ({"channels": 2}, "channels"),
        ({"n_colours": 5}, "n_colours"),
        ({"start": -1}, "start"),
    ],
)
def test_bad_arguments_are_rejected_with_a_message_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_clips(2, **kwargs)


def test_explicit_indices_pick_the_same_clips_as_a_range():
    whole, lw = make_clips(6, seed=2, size=16, mark_size=2)
    picked, lp = make_clips(3, seed=2, size=16, mark_size=2, indices=[5, 0, 3])
    np.testing.assert_array_equal(picked, whole[[5, 0, 3]])
    np.testing.assert_array_equal(lp, lw[[5, 0, 3]])
    with pytest.raises(ValueError, match="indices"):
        make_clips(2, indices=[1])
