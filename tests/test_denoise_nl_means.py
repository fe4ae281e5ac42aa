"""Non-local means: the three implementations against independent oracles.

Oracles: a plain Python loop (the formula, pixel by pixel, no NumPy tricks),
scikit-image's ``denoise_nl_means`` (small images; PSNR on real images is in
``test_denoise_skimage_psnr.py``), hand-computed limits (constant image,
h -> 0, h -> infinity).
"""

from __future__ import annotations

import itertools
import math
import struct

import numpy as np
import pytest

from nlref._validation import as_tuple
from nlref.backend import asarray, to_numpy
from nlref.data import add_gaussian_noise, load_image
from nlref.denoise import nl_means, nl_means_pixelwise
from nlref.denoise._schraudolph import schraudolph_exp
from nlref.denoise.batched import batch_bytes, offset_loop_batched
from nlref.denoise.fast import half_offsets, offset_loop, window_sum


# --------------------------------------------------------------------------- oracle
def _reflect(i: int, n: int) -> int:
    """NumPy's "reflect" padding, repeated as often as needed (a 1-pixel axis repeats its pixel)."""
    if n == 1:
        return 0
    while i < 0 or i >= n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def python_loop_nl_means(v, s, d, h, sigma=0.0, kernel="gaussian", centre_max=False):
    """The definition in plain Python: v is a list of rows of per-pixel channel lists."""
    H, W, C = len(v), len(v[0]), len(v[0][0])
    r = s // 2
    if kernel == "gaussian":
        a = (s - 1) / 4
        g = [[math.exp(-((k - r) ** 2 + (m - r) ** 2) / (2 * a * a)) for m in range(s)] for k in range(s)]
    else:
        g = [[1.0] * s for _ in range(s)]
    total = sum(map(sum, g))
    out = [[[0.0] * C for _ in range(W)] for _ in range(H)]
    for i in range(H):
        for j in range(W):
            weights = {}
            for y in range(max(0, i - d), min(H, i + d + 1)):
                for x in range(max(0, j - d), min(W, j + d + 1)):
                    d2 = 0.0
                    for k in range(s):
                        for m in range(s):
                            p = v[_reflect(i + k - r, H)][_reflect(j + m - r, W)]
                            q = v[_reflect(y + k - r, H)][_reflect(x + m - r, W)]
                            d2 += g[k][m] / total * sum((pc - qc) ** 2 for pc, qc in zip(p, q)) / C
                    weights[y, x] = math.exp(-max(d2 - 2 * sigma**2, 0.0) / h**2)
            if centre_max:
                others = [w for key, w in weights.items() if key != (i, j)]
                weights[i, j] = max(others) if others and max(others) > 0 else 1.0
            z = sum(weights.values())
            for c in range(C):
                out[i][j][c] = sum(w * v[y][x][c] for (y, x), w in weights.items()) / z
    return np.array(out)


def schraudolph_exp_py(y):
    """Schraudolph (1999) in plain Python.

    A double's high 32 bits are ``trunc(y 2^20 / ln 2) + 1023 2^20 - 60801``, its low 32 bits 0.
    """
    high = int(y * 2**20 / math.log(2)) + 1023 * 2**20 - 60801  # int() truncates toward zero, as C does
    return struct.unpack("<d", struct.pack("<q", high << 32))[0]


def test_schraudolph_exp_py_is_a_few_per_cent_from_exp():
    # the oracle itself, against the exact exponential: 0.971 at 0, within 4.2 % over [-5, 0]
    assert schraudolph_exp_py(0.0) == pytest.approx(0.97100782, abs=1e-8)
    for y in np.linspace(-5, 0, 101):
        assert abs(schraudolph_exp_py(y) / math.exp(y) - 1) < 0.042


def test_schraudolph_exp_is_the_plain_python_bit_trick(xp):
    # float64: bit for bit; float32: trunc(A x) of a float32 product, at most one unit of 2^-20 apart
    y = np.concatenate([-np.linspace(0, 5, 501), [-7.5, -20.0, -79.0]])
    want = np.array([schraudolph_exp_py(v) for v in y])
    got = to_numpy(schraudolph_exp(xp.array(y)))  # in place: a copy of y
    assert got.tolist() == want.tolist()
    got32 = to_numpy(schraudolph_exp(xp.array(y, dtype=xp.float32)))
    np.testing.assert_allclose(got32, want, rtol=2.0**-19, atol=0)
    keep = xp.asarray(y > -5)  # the cut-off: weights below exp(-5) are exactly 0
    cut = to_numpy(schraudolph_exp(xp.array(y), keep))
    assert (cut[y <= -5] == 0).all() and cut[y > -5].tolist() == want[y > -5].tolist()
    huge = to_numpy(schraudolph_exp(xp.asarray([-1e300, -np.inf])))
    assert huge.tolist() == [schraudolph_exp_py(-80.0)] * 2  # below -80: taken as -80, finite


def python_loop_skimage_fast(v, s, d, h, sigma=0.0):
    """scikit-image's fast mode (``_fast_nl_means_denoising_2d``) in plain Python, with its exp.

    Its integral image sums ``D - 2 C sigma^2`` (``D`` the squared difference summed over the
    channels) over the box of rows and columns ``(x - r, x + r]``, divides by ``C h^2 s^2``, skips
    pairs whose distance exceeds 5, weighs the others by Schraudolph's exp and searches the whole
    window of the image padded by reflection.
    """
    H, W, C = len(v), len(v[0]), len(v[0][0])
    r = s // 2
    at = lambda y, x: v[_reflect(y, H)][_reflect(x, W)]  # noqa: E731
    out = [[[0.0] * C for _ in range(W)] for _ in range(H)]
    for i in range(H):
        for j in range(W):
            num, z = [0.0] * C, 0.0
            for y in range(i - d, i + d + 1):
                for x in range(j - d, j + d + 1):
                    box = 0.0
                    for k in range(-r + 1, r + 1):
                        for m in range(-r + 1, r + 1):
                            p, q = at(i + k, j + m), at(y + k, x + m)
                            box += sum((pc - qc) ** 2 for pc, qc in zip(p, q)) - 2 * C * sigma**2
                    distance = max(box, 0.0) / (C * h * h * s * s)
                    if distance > 5:
                        continue
                    w = schraudolph_exp_py(-distance)
                    num = [a + w * b for a, b in zip(num, at(y, x))]
                    z += w
            out[i][j] = [a / z for a in num]
    return np.array(out)


@pytest.fixture
def noisy12(rng):
    return 0.5 + 0.1 * rng.standard_normal((12, 12))


# --------------------------------------------------------------------------- pixel-wise reference
@pytest.mark.parametrize("kernel", ["gaussian", "uniform"])
@pytest.mark.parametrize("sigma", [0.0, 0.05])
@pytest.mark.parametrize("weighting", ["skimage", "ipol"])
def test_pixelwise_matches_plain_python_loop_on_12x12(noisy12, kernel, sigma, weighting):
    expected = python_loop_nl_means(
        [[[x] for x in row] for row in noisy12.tolist()],
        3,
        2,
        0.12,
        sigma,
        kernel,
        centre_max=weighting == "ipol",
    )[..., 0]
    got = nl_means_pixelwise(
        noisy12, 3, 2, 0.12, sigma=sigma, patch_weights=kernel, weighting=weighting, distance_scale="patch"
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("s", [3, 5])
@pytest.mark.parametrize("sigma", [0.0, 0.05])
@pytest.mark.parametrize("h", [0.06, 0.12])  # 0.06: many pairs beyond the cut-off
def test_fast_mode_default_is_scikit_images_fast_mode(noisy12, s, sigma, h):
    expected = python_loop_skimage_fast([[[x] for x in row] for row in noisy12.tolist()], s, 2, h, sigma)
    got = nl_means(noisy12, s, 2, h, True, sigma)
    np.testing.assert_allclose(got, expected[..., 0], rtol=0, atol=1e-12)
    slow = nl_means(noisy12, s, 2, h, False, sigma)  # slow mode has one form
    np.testing.assert_array_equal(slow, nl_means(noisy12, s, 2, h, False, sigma, distance_scale="patch"))


def test_fast_mode_default_in_colour_and_near_a_thin_border(rng):
    v = rng.random((5, 9, 3))  # the window (d = 6) reaches past both borders of the short axis
    expected = python_loop_skimage_fast(v.tolist(), 5, 6, 0.4, 0.05)
    for cap in (None, 2**19):
        got = nl_means(v, 5, 6, 0.4, True, 0.05, channel_axis=-1, max_batch_bytes=cap)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_fast_mode_true_patch_form_is_the_definition(noisy12):
    expected = python_loop_nl_means(
        [[[x] for x in row] for row in noisy12.tolist()], 5, 2, 0.12, 0.05, "uniform"
    )
    got = nl_means(noisy12, 5, 2, 0.12, True, 0.05, distance_scale="patch")
    np.testing.assert_allclose(got, expected[..., 0], rtol=0, atol=1e-12)


def test_pixelwise_matches_plain_python_loop_in_colour(rng):
    v = rng.random((8, 9, 3))
    expected = python_loop_nl_means(v.tolist(), 5, 2, 0.3)
    got = nl_means_pixelwise(v, 5, 2, 0.3, channel_axis=-1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- offset loop == definition
CASES = [
    pytest.param(dict(shape=(20, 23), patch_size=5, patch_distance=4), id="grey"),
    pytest.param(dict(shape=(17, 15, 3), patch_size=3, patch_distance=3, channel_axis=-1), id="rgb-last"),
    pytest.param(dict(shape=(2, 14, 13), patch_size=3, patch_distance=2, channel_axis=0), id="2ch-first"),
    pytest.param(dict(shape=(7, 9, 10), patch_size=3, patch_distance=2), id="volume"),
    pytest.param(
        dict(shape=(6, 11, 12), patch_size=(1, 3, 5), patch_distance=(1, 3, 2)), id="video-per-axis"
    ),
    pytest.param(
        dict(shape=(5, 8, 9, 2), patch_size=3, patch_distance=(2, 1, 2), channel_axis=3), id="volume-2ch"
    ),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fast_mode", [True, False])
@pytest.mark.parametrize("weighting,sigma", [("skimage", 0.0), ("skimage", 0.04), ("ipol", 0.04)])
def test_offset_loop_equals_pixelwise_definition(xp, rng, case, fast_mode, weighting, sigma):
    case = dict(case)
    image = rng.random(case.pop("shape"))
    kw = dict(h=0.15, sigma=sigma, weighting=weighting, **case)
    expected = nl_means_pixelwise(image, patch_weights="uniform" if fast_mode else "gaussian", **kw)
    got = nl_means(asarray(image, xp), fast_mode=fast_mode, **kw)
    np.testing.assert_allclose(to_numpy(got), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("batch", [2, None])
def test_batched_offsets_equal_one_offset_per_step(xp, rng, case, batch):
    case = dict(case)
    image = rng.random(case.pop("shape"))
    kw = dict(h=0.15, sigma=0.03, **case)
    expected = nl_means_pixelwise(image, patch_weights="uniform", **kw)
    u = np.moveaxis(image, case.get("channel_axis", 0), 0) if "channel_axis" in case else image[None]
    n = u.ndim - 1
    d = as_tuple(case["patch_distance"], n, "")
    free = 11 if n == 2 else 0  # fast mode's window, completed by reflection
    grown = (u.shape[0],) + tuple(m + 2 * min(dk, max(m - 1, free)) for m, dk in zip(u.shape[1:], d))
    cap = 2**30 if batch is None else batch_bytes(grown, 8, as_tuple(case["patch_size"], n, ""), batch)
    got = nl_means(asarray(image, xp), max_batch_bytes=cap, **kw)
    np.testing.assert_allclose(to_numpy(got), expected, rtol=0, atol=1e-12)


def test_batched_and_plain_loop_agree_in_float32_on_a_real_image():
    u = add_gaussian_noise(load_image("camera")[200:296, 200:296], 0.08, seed=1)[None]
    a = offset_loop(u, (7, 7), (10, 10), 0.07, 0.08, centre="max")
    b = offset_loop_batched(u, (7, 7), (10, 10), 0.07, 0.08, centre="max", batch=21)
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


@pytest.mark.gpu
def test_cupy_equals_numpy_in_float32(xp):
    if xp is np:
        pytest.skip("compares CuPy with NumPy")
    noisy = add_gaussian_noise(load_image("camera")[:128, :128], 20 / 255, seed=3)
    cpu = nl_means(noisy, 7, 10, 0.06, sigma=20 / 255)
    gpu = nl_means(asarray(noisy, xp), 7, 10, 0.06, sigma=20 / 255)
    np.testing.assert_allclose(to_numpy(gpu), cpu, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 11])
def test_window_sum_equals_differences_of_the_cumulative_sum(rng, size):
    x = rng.random((13, 21))
    c = np.concatenate([np.zeros((13, 1)), np.cumsum(x, axis=1)], axis=1)
    np.testing.assert_allclose(window_sum(x, size, 1), c[:, size:] - c[:, :-size], atol=1e-12)


def test_half_offsets_and_their_opposites_tile_the_window():
    half = list(half_offsets((2, 1, 3)))
    full = half + [tuple(-c for c in t) for t in half] + [(0, 0, 0)]
    assert sorted(full) == sorted((a - 2, b - 1, c - 3) for a, b, c in np.ndindex(5, 3, 7))


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("fast_mode", [True, False])
@pytest.mark.parametrize("weighting", ["skimage", "ipol"])
def test_constant_image_is_unchanged(xp, fast_mode, weighting):
    image = xp.full((15, 16), 0.3)
    out = nl_means(image, 5, 3, 0.1, fast_mode=fast_mode, sigma=0.02, weighting=weighting)
    np.testing.assert_allclose(to_numpy(out), 0.3, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fast_mode", [True, False])
def test_tiny_h_returns_the_input(xp, rng, fast_mode):
    image = rng.random((16, 17))
    out = nl_means(asarray(image, xp), 5, 4, 1e-6, fast_mode=fast_mode)
    np.testing.assert_allclose(to_numpy(out), image, rtol=0, atol=1e-12)


@pytest.mark.parametrize("d", [3, 20])
@pytest.mark.parametrize("batch_bytes", [None, 2**30])
def test_huge_h_gives_the_box_mean_over_the_search_window(xp, rng, d, batch_bytes):
    image = rng.random((14, 15))
    clipped = np.array(
        [
            [image[max(0, i - d) : i + d + 1, max(0, j - d) : j + d + 1].mean() for j in range(15)]
            for i in range(14)
        ]
    )
    out = nl_means(asarray(image, xp), 5, d, 1e6, max_batch_bytes=batch_bytes, distance_scale="patch")
    np.testing.assert_allclose(to_numpy(out), clipped, rtol=0, atol=1e-9)
    # the default (scikit-image's fast mode): the window is whole, completed by reflection,
    # up to a half-width of max(extent - 1, 11) in 2-D
    e, f = min(d, 13), min(d, 14)
    grown = np.pad(image, ((e, e), (f, f)), mode="reflect")
    whole = np.array(
        [[grown[i : i + 2 * e + 1, j : j + 2 * f + 1].mean() for j in range(15)] for i in range(14)]
    )
    out = nl_means(asarray(image, xp), 5, d, 1e6, max_batch_bytes=batch_bytes)
    np.testing.assert_allclose(to_numpy(out), whole, rtol=0, atol=1e-9)


def test_float32_and_float64_agree(xp, rng):
    image = rng.random((40, 41))
    out64 = nl_means(asarray(image, xp), 7, 5, 0.2, sigma=0.05)
    out32 = nl_means(asarray(image.astype(np.float32), xp), 7, 5, 0.2, sigma=0.05)
    assert out64.dtype == np.float64 and out32.dtype == np.float32
    np.testing.assert_allclose(to_numpy(out32), to_numpy(out64), rtol=0, atol=1e-5)


def test_integer_images_are_scaled_like_img_as_float_unless_preserve_range(rng):
    image = rng.integers(0, 256, (20, 20)).astype(np.uint8)
    scaled = nl_means(image, 3, 2, 0.1)
    assert scaled.dtype == np.float64
    np.testing.assert_allclose(scaled, nl_means(image / 255.0, 3, 2, 0.1), atol=1e-12)
    kept = nl_means(image, 3, 2, 0.1 * 255, preserve_range=True)
    np.testing.assert_allclose(kept, 255 * scaled, atol=1e-9)


def test_result_does_not_depend_on_where_the_channel_axis_is(rng):
    image = rng.random((12, 13, 3))
    last = nl_means(image, 3, 2, 0.2, channel_axis=-1)
    first = nl_means(np.moveaxis(image, -1, 0), 3, 2, 0.2, channel_axis=0)
    np.testing.assert_allclose(np.moveaxis(first, 0, -1), last, atol=1e-12)
    assert last.shape == image.shape


def test_video_with_frame_patches_and_no_temporal_search_denoises_each_frame(rng):
    video = rng.random((3, 16, 17))
    out = nl_means(video, (1, 5, 5), (0, 3, 3), 0.2)
    for t in range(3):
        np.testing.assert_allclose(out[t], nl_means(video[t], 5, 3, 0.2), atol=1e-12)


def test_input_is_not_modified(rng):
    image = rng.random((12, 12))
    before = image.copy()
    nl_means(image, 3, 2, 0.1)
    np.testing.assert_array_equal(image, before)


# --------------------------------------------------------------------------- images smaller than the patch
SMALL = [(n, n) for n in range(1, 8)] + [(1, 9), (2, 11), (6, 3)]


@pytest.mark.parametrize("shape", SMALL)
@pytest.mark.parametrize("fast_mode", [True, False])
def test_images_smaller_than_the_patch_follow_the_definition(rng, shape, fast_mode):
    # patch 7 on images of 1 x 1 up to 7 x 7: patches completed by repeated reflection
    v = rng.random(shape + (2,))
    if fast_mode:  # scikit-image's fast mode: the whole window of d = 11, by reflection
        expected = python_loop_skimage_fast(v.tolist(), 7, 11, 0.3, 0.02)
    else:
        expected = python_loop_nl_means(v.tolist(), 7, 11, 0.3, 0.02, "gaussian")
    got = nl_means(v, 7, 11, 0.3, fast_mode, 0.02, channel_axis=-1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    batched = nl_means(v, 7, 11, 0.3, fast_mode, 0.02, channel_axis=-1, max_batch_bytes=2**30)
    np.testing.assert_allclose(batched, expected, rtol=0, atol=1e-12)


def _skimage_small(image, h, fast_mode, sigma=0.0, channel_axis=None):
    from skimage.restoration import denoise_nl_means

    out = denoise_nl_means(image, 7, 11, h, fast_mode, sigma, channel_axis=channel_axis)
    return np.asarray(out).reshape(image.shape)  # scikit-image squeezes a 1 x 1 grey result to ()


@pytest.mark.parametrize("n", range(1, 8))
@pytest.mark.parametrize("colour", [False, True])
def test_images_up_to_the_patch_size_match_scikit_image(rng, n, colour):
    # to 1e-6 wherever scikit-image's arithmetic is exact: a tiny h (only identical patches
    # count: the image comes back, both modes), and a huge h or a sigma above every distance
    # (every weight equal: the mean over the search window, clipped to the image in slow mode)
    image = rng.random((n, n, 3) if colour else (n, n))
    ch = -1 if colour else None
    for fast_mode in (True, False):
        ours = nl_means(image, 7, 11, 1e-3, fast_mode, channel_axis=ch)
        np.testing.assert_allclose(ours, _skimage_small(image, 1e-3, fast_mode, channel_axis=ch), atol=1e-6)
        np.testing.assert_allclose(ours, image, atol=1e-12)
    for (h, sigma), fast_mode in itertools.product(((1e4, 0.0), (0.1, 10.0)), (True, False)):
        ours = nl_means(image, 7, 11, h, fast_mode, sigma, channel_axis=ch)
        theirs = _skimage_small(image, h, fast_mode, sigma, channel_axis=ch)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
        if not fast_mode:  # fast mode: the mean over the whole window, completed by reflection
            np.testing.assert_allclose(ours, np.broadcast_to(image.mean(axis=(0, 1)), image.shape), atol=1e-6)
    # at an ordinary h, fast mode is scikit-image's arithmetic, its exp included; slow mode differs
    # only by scikit-image's approximate exp (measured <= 4e-3)
    ours = nl_means(image, 7, 11, 0.3, True, 0.02, channel_axis=ch)
    theirs = _skimage_small(image, 0.3, True, 0.02, channel_axis=ch)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    ours = nl_means(image, 7, 11, 0.3, False, channel_axis=ch)
    np.testing.assert_allclose(ours, _skimage_small(image, 0.3, False, channel_axis=ch), rtol=0, atol=1e-2)


def test_a_thin_image_is_denoised_chunk_by_chunk_like_in_memory(rng):
    pytest.importorskip("dask.array")
    from nlref.denoise import nl_means_dask

    image = rng.random((3, 40))
    lazy = nl_means_dask(image, 7, 5, 0.2, chunks=16)
    np.testing.assert_allclose(lazy.compute(), nl_means(image, 7, 5, 0.2), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- bad input
GOOD = dict(patch_size=3, patch_distance=2, h=0.1)
BAD = [
    (dict(patch_size=4), ValueError, "patch_size"),
    (dict(patch_size=0), ValueError, "patch_size"),
    (dict(patch_size=-3), ValueError, "patch_size"),
    (dict(patch_size=(3, 4)), ValueError, "patch_size"),
    (dict(patch_size=(3, 3, 3)), ValueError, "patch_size"),
    (dict(patch_size=3.0), TypeError, "patch_size"),
    (dict(patch_distance=-1), ValueError, "patch_distance"),
    (dict(h=0.0), ValueError, "h"),
    (dict(h=-0.1), ValueError, "h"),
    (dict(h=float("nan")), ValueError, "h"),
    (dict(h="0.1"), TypeError, "h"),
    (dict(sigma=-0.1), ValueError, "sigma"),
    (dict(channel_axis=2), ValueError, "channel_axis"),
    (dict(channel_axis=1.0), TypeError, "channel_axis"),
    (dict(weighting="nope"), ValueError, "weighting"),
    (dict(patch_size=19), ValueError, "patch_size"),
    (dict(distance_scale="true"), ValueError, "distance_scale"),
    (dict(distance_scale=None), ValueError, "distance_scale"),
]


@pytest.mark.parametrize("fn", [nl_means, nl_means_pixelwise])
@pytest.mark.parametrize("change,error,name", BAD)
def test_bad_arguments_are_refused_naming_them(fn, change, error, name):
    with pytest.raises(error, match=name):
        fn(np.zeros((8, 8)), **{**GOOD, **change})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused(bad):
    image = np.zeros((8, 8))
    image[3, 4] = bad
    with pytest.raises(ValueError, match="image must be finite"):
        nl_means(image, **GOOD)


@pytest.mark.parametrize("shape", [(8,), (2, 2, 2, 8, 8)])
def test_wrong_number_of_dimensions_is_refused(shape):
    with pytest.raises(ValueError, match="image must have"):
        nl_means(np.zeros(shape), **GOOD)


def test_non_array_and_complex_images_are_refused():
    with pytest.raises(TypeError, match="image"):
        nl_means([[0.0] * 8] * 8, **GOOD)
    with pytest.raises(TypeError, match="dtype"):
        nl_means(np.zeros((8, 8), complex), **GOOD)


def test_an_rgb_image_without_channel_axis_is_a_volume_with_a_warning():
    # scikit-image denoises it as a volume; nlref does the same and says how to mean colour
    with pytest.warns(UserWarning, match="thinner than the patch.*pass channel_axis=-1"):
        nl_means(np.zeros((8, 8, 2)), **GOOD)
    with pytest.warns(UserWarning, match="thinner than the patch.*pass channel_axis=-1"):
        nl_means(np.zeros((16, 16, 3)))  # scikit-image's defaults: patch 7
