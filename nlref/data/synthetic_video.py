"""Synthetic long-range video task: are two far-apart marks the same colour?

Part of the video story of *Non-local Neural Networks* (Wang, Girshick, Gupta,
He, CVPR 2018, Section 4): a non-local block relates positions that are far
apart in space *and time*, which a C2D network (2-D convolutions, time touched
only by its pooling layers) cannot.  This module generates, on the fly and
deterministically, small clips whose label depends on two such positions, so
that the paper's ablations can be reproduced in minutes.

**The task** (``"same_colour"``).  A clip ``(C, T, H, W)`` = ``(3, 16, 32, 32)``
is Gaussian noise of std ``noise`` = 0.1.  Mark A, a ``mark_size`` x
``mark_size`` square of colour ``c1``, is shown at a random place only in
frames ``t_a .. t_a + mark_frames - 1`` (default 4-5); mark B, a square of
colour ``c2`` at a random place not overlapping A, only in frames ``t_b ..``
(default 10-11).  The palette has ``K = 8`` colours, the corners of
``{-1, +1}^3``.  The label is 1 iff ``c1 == c2``; "different" draws ``c2``
uniformly among the other ``K - 1`` colours.  Labels are exactly balanced: clip
``i`` has label ``i % 2`` (the network never sees ``i``).

**Why C2D cannot solve it.**  All convolutions of C2D are ``1 x k x k``; time is
mixed only by pool1 (max, 3 frames, stride 1) and pool2 (max, 3 frames, stride
2) of the tiny network in :mod:`nlref.nn.video.models`, so every unit sees at most
``3 + (3 - 1) * 1 = 5`` consecutive frames: its *temporal receptive field*.
The nearest frames of A and B (5 and 10) span 6 frames, so no unit sees both
marks.  Global average pooling + fc then makes the logit additive,
``h(c1) + h(c2) + b``, and the cross-entropy optimum of such a rule is
symmetric in the colours, i.e. constant: C2D stays at exactly 50 %.  (Its
*spatial* receptive field, on the other hand, covers the whole 32 x 32 frame:
only time separates the marks.)  A space-time non-local block relates every
pair of positions and solves it; so does I3D, whose temporal kernels give a
receptive field of 17 frames (measured: data/figures/ablation_cpu.md, part (f)).
With ``n_frames=40`` the marks sit at frames 10-11 and 28-29: a window must cover
the 18 frames 11 .. 28 to see both, more than I3D's 17, so I3D is back at chance
while the non-local block still relates them (part (l) of ``nlref ablate``).  A space-only non-local block (within
each frame) cannot relate the marks and stays near chance.  Both marks start on even
frames and stay away from the ends of the clip, so time pooling cannot tell
early from late.

**Determinism and splits.**  Clip ``i`` of split ``s`` is drawn from its own
generator, seeded by ``numpy.random.SeedSequence(seed, spawn_key=(s, i))``:
the same ``(seed, split, i)`` always gives the same clip, on any machine, and
the train / val / test streams are independent streams that never share a clip.
A training run takes batch ``b`` = clips ``b * B .. (b + 1) * B - 1`` of the
train split (fresh clips every step, resumable exactly from a step number);
validation uses clips ``0 .. n - 1`` of the val split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import asarray

__all__ = ["SPLITS", "palette", "clip_rng", "same_colour_clip", "make_clips", "temporal_gap"]

#: Split name -> first spawn-key element of its seed stream.
SPLITS = {"train": 0, "val": 1, "test": 2}


def palette(channels: int = 3, n_colours: int = 8) -> np.ndarray:
    """The ``(K, C)`` mark colours: corners of ``{-1, 1}^3``, or ``K`` grey levels.

    Parameters
    ----------
    channels : {1, 3}
        Colour (3: the ``K = 8`` corners of the cube ``{-1, +1}^3``) or grey
        (1: ``K`` levels evenly spread over ``[-1, 1]``).
    n_colours : int
        ``K``; must be 8 for colour clips, >= 2 for grey ones.
    """
    if channels == 3:
        if n_colours != 8:
            raise ValueError(f"n_colours must be 8 for 3-channel clips (cube corners), received {n_colours}")
        corners = np.array([[(k >> b) & 1 for b in (2, 1, 0)] for k in range(8)], dtype=np.float64)
        return 2.0 * corners - 1.0
    if channels == 1:
        if n_colours < 2:
            raise ValueError(f"n_colours must be >= 2, received {n_colours}")
        return np.linspace(-1.0, 1.0, n_colours)[:, None]
    raise ValueError(f"channels must be 1 or 3, received {channels}")


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of clip ``index`` of ``split``: ``SeedSequence(seed, spawn_key=(split_id, index))``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLITS[split], int(index))))


def temporal_gap(t_a: int, t_b: int, mark_frames: int) -> int:
    """Number of frames spanned by the nearest frames of A and B.

    A unit whose temporal receptive field is smaller than this never sees
    both marks (default task: frames 5 and 10, a span of 6 frames).
    """
    return t_b - (t_a + mark_frames - 1) + 1


def _square_origins(rng: np.random.Generator, size: int, m: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Top-left corners of two non-overlapping ``m x m`` squares in a ``size x size`` frame."""
    ya, xa = (int(v) for v in rng.integers(0, size - m + 1, size=2))
    while True:  # rejection sampling; at least 3/4 of the places are free for size >= 4 m
        yb, xb = (int(v) for v in rng.integers(0, size - m + 1, size=2))
        if abs(ya - yb) >= m or abs(xa - xb) >= m:
            return (ya, xa), (yb, xb)


def same_colour_clip(
    rng: np.random.Generator,
    label: int,
    *,
    n_frames: int = 16,
    size: int = 32,
    channels: int = 3,
    n_colours: int = 8,
    mark_size: int = 4,
    mark_frames: int = 2,
    t_a: int = 4,
    t_b: int = 10,
    noise: float = 0.1,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw one clip of the same-or-different-colour task (float64, NumPy).

    Returns
    -------
    clip : ndarray, shape (C, T, H, W)
    info : dict
        ``colour_a``, ``colour_b`` (palette indices), ``pos_a``, ``pos_b``
        (top-left ``(y, x)``), ``t_a``, ``t_b`` (first frames).
    """
    colours = palette(channels, n_colours)
    clip = rng.normal(0.0, noise, size=(channels, n_frames, size, size))
    c1 = int(rng.integers(n_colours))
    if label:
        c2 = c1
    else:  # uniform over the K - 1 other colours
        c2 = int(rng.integers(n_colours - 1))
        c2 += c2 >= c1
    (ya, xa), (yb, xb) = _square_origins(rng, size, mark_size)
    m = mark_size
    clip[:, t_a:t_a + mark_frames, ya:ya + m, xa:xa + m] = colours[c1][:, None, None, None]
    clip[:, t_b:t_b + mark_frames, yb:yb + m, xb:xb + m] = colours[c2][:, None, None, None]
    info = {"colour_a": c1, "colour_b": c2, "pos_a": (ya, xa), "pos_b": (yb, xb), "t_a": t_a, "t_b": t_b}
    return clip, info


def _check_task(n_frames, size, channels, n_colours, mark_size, mark_frames, t_a, t_b, noise) -> None:
    for name, v in (("n_frames", n_frames), ("size", size), ("mark_size", mark_size), ("mark_frames", mark_frames)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, received {v!r}")
    palette(channels, n_colours)  # validates channels / n_colours
    if size < 2 * mark_size:
        raise ValueError(f"size must be >= 2 * mark_size = {2 * mark_size} to fit two marks, received {size}")
    if not (0 <= t_a and t_a + mark_frames <= t_b and t_b + mark_frames <= n_frames):
        raise ValueError(
            "marks must fit in the clip in order: expected 0 <= t_a, t_a + mark_frames <= t_b, "
            f"t_b + mark_frames <= n_frames, received t_a={t_a}, t_b={t_b}, mark_frames={mark_frames}, "
            f"n_frames={n_frames}"
        )
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise ValueError(f"noise must be a real number >= 0, received {noise!r}")


def make_clips(
    n: int,
    *,
    seed: int = 0,
    split: str = "train",
    start: int = 0,
    indices: Any = None,
    n_frames: int = 16,
    size: int = 32,
    channels: int = 3,
    n_colours: int = 8,
    mark_size: int = 4,
    mark_frames: int = 2,
    t_a: int | None = None,
    t_b: int | None = None,
    noise: float = 0.1,
    dtype: Any = np.float32,
    xp: Any = np,
    return_info: bool = False,
):
    """Clips ``start .. start + n - 1`` of a split of the same-or-different-colour task.

    Parameters
    ----------
    n : int
        Number of clips.
    seed : int
        Dataset seed; with ``split`` and the clip index it fixes every clip.
    split : {"train", "val", "test"}
        Disjoint seed streams (see the module docstring).
    start : int
        Index of the first clip (training batch ``b`` of size ``B``: ``start = b * B``).
    indices : sequence of int, optional
        Explicit clip indices instead of ``start .. start + n - 1`` (``n`` must equal their number).
    n_frames, size, channels : int
        Clip shape ``(channels, n_frames, size, size)``.
    n_colours, mark_size, mark_frames, noise
        Palette size, side of the square marks, frames each mark lasts, noise std.
    t_a, t_b : int, optional
        First frame of mark A and of mark B; default ``n_frames // 4`` and
        ``n_frames - n_frames // 4 - mark_frames`` (4 and 10 for 16 frames).
    dtype, xp
        Output dtype and array module (clips are drawn with NumPy on the host,
        then moved with :func:`nlref.backend.asarray`).
    return_info : bool
        Also return the marks' colours, places and frames (NumPy arrays).

    Returns
    -------
    clips : ndarray, shape (n, C, T, H, W)
    labels : ndarray of int64, shape (n,)
        1 iff the two marks have the same colour; clip ``i`` has label ``i % 2``.
    info : dict of ndarray, only with ``return_info``
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, received {split!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, received {n!r}")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise ValueError(f"start must be an int >= 0, received {start!r}")
    indices = np.arange(start, start + n) if indices is None else np.asarray(indices, dtype=np.int64).ravel()
    if len(indices) != n or (n and indices.min() < 0):
        raise ValueError(f"indices must be {n} ints >= 0, received {len(indices)} (min {indices.min() if n else '-'})")
    t_a = n_frames // 4 if t_a is None else t_a
    t_b = n_frames - n_frames // 4 - mark_frames if t_b is None else t_b
    _check_task(n_frames, size, channels, n_colours, mark_size, mark_frames, t_a, t_b, noise)
    task = dict(n_frames=n_frames, size=size, channels=channels, n_colours=n_colours, mark_size=mark_size,
                mark_frames=mark_frames, t_a=t_a, t_b=t_b, noise=noise)
    clips = np.empty((n, channels, n_frames, size, size), dtype=dtype)
    labels = np.empty(n, dtype=np.int64)
    infos = []
    for k, i in enumerate(indices.tolist()):
        labels[k] = i % 2
        clips[k], info = same_colour_clip(clip_rng(seed, split, i), int(labels[k]), **task)
        infos.append(info)
    out = (asarray(clips, xp), asarray(labels, xp))
    if not return_info:
        return out
    info_arrays = {key: np.array([d[key] for d in infos], dtype=np.int64) for key in ("colour_a", "colour_b", "t_a", "t_b")}
    for key in ("pos_a", "pos_b"):
        info_arrays[key] = np.array([d[key] for d in infos], dtype=np.int64).reshape(n, 2)
    return (*out, info_arrays)
