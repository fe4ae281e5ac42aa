"""BM3D (nlref.denoise.bm3d) against independent oracles.

Oracles: the reference loop over reference blocks (read next to Lebrun's
article), PyWavelets and SciPy for the transform matrices, invariants of the
algorithm (constant images, transposition, sigma -> 0, float32 vs float64),
:mod:`tracemalloc` for the memory cap, and the ``bm3d`` package for PSNR.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from nlref.backend import PeakMemory, to_numpy
from nlref.data import load_image
from nlref.denoise import bm3d, bm3d_reference
from nlref.denoise.bm3d import bm3d_profile
from nlref.denoise.bm3d.matching import band_distances, rounded_distance, select_groups, window_offsets
from nlref.denoise.bm3d.profile import match_threshold, reference_positions
from nlref.denoise.bm3d.reference import match_reference
from nlref.denoise.bm3d.transforms import bior15_matrix, dct_matrix, hadamard_matrix
from nlref.metrics import psnr

SIGMA = 25 / 255


def _noisy(shape=(32, 32), sigma=SIGMA, seed=0):
    clean = load_image("camera")[100 : 100 + shape[0], 200 : 200 + shape[1]].astype(np.float64)
    return clean, clean + np.random.default_rng(seed).normal(0, sigma, shape)


# --- transforms -------------------------------------------------------------------------------


def test_bior15_matrix_is_pywavelets_periodized_wavedec_with_unit_rows():
    pywt = pytest.importorskip("pywt")
    cols = [np.hstack(pywt.wavedec(e, "bior1.5", mode="periodization", level=3)) for e in np.eye(8)]
    expected = np.array(cols).T
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(bior15_matrix(8), expected, atol=1e-12)


def test_dct_matrix_is_scipy_orthonormal_dct_ii():
    for k in (8, 11, 12):
        np.testing.assert_allclose(dct_matrix(k), scipy.fft.dct(np.eye(k), norm="ortho", axis=0), atol=1e-12)


def test_hadamard_matrix_is_orthonormal_with_plus_minus_entries():
    H = hadamard_matrix(16)
    np.testing.assert_allclose(H @ H.T, np.eye(16), atol=1e-12)
    np.testing.assert_allclose(np.abs(H), 0.25)


def test_profile_changes_above_sigma_40_as_the_article_says():
    low, high = bm3d_profile(40.0), bm3d_profile(40.1)
    assert (low[0].block, low[0].tau_match, low[0].transform_2d, low[1].tau_match) == (
        8,
        2500,
        "bior1.5",
        400,
    )
    assert (high[0].block, high[0].tau_match, high[0].transform_2d) == (12, 5000, "dct")
    assert (high[1].block, high[1].tau_match) == (11, 3500)


# --- grouping -----------------------------------------------------------------------------------


def test_every_reference_block_is_first_in_its_group_at_distance_zero(xp):
    _, noisy = _noisy((30, 30))
    hard = bm3d_profile(25.0)[0]
    for image in (noisy, np.full((30, 30), 0.5)):  # the constant image: every distance ties at 0
        ys = np.array(reference_positions(23, 3))
        dist = band_distances(xp.asarray(image), ys, ys, 8, hard.window)
        self_index = len(window_offsets(hard.window)) // 2
        np.testing.assert_array_equal(to_numpy(dist[self_index]), -1)  # the reference: distance 0, first
        members, size = select_groups(xp.ascontiguousarray(dist.reshape(dist.shape[0], -1).T), 16, 1.0)
        assert (to_numpy(members[:, 0]) == self_index).all() and (to_numpy(size) >= 1).all()
        assert match_reference(image, 9, 12, hard, 1.0)[0] == (9, 12)


def test_ties_are_broken_by_scan_order(xp):
    dist = xp.asarray([[0.5, -1.0, 0.2, 0.5, 0.2, 0.5, 9.0]])
    members, size = select_groups(dist, 4, 1.0)
    assert to_numpy(members).tolist() == [[1, 2, 4, 0]]  # 0.5 ties: offset 0 before 3 and 5
    assert int(size[0]) == 4
    members, size = select_groups(dist, 8, 0.4)  # 3 blocks below tau: a group of 2
    assert int(size[0]) == 2


def test_block_distance_is_the_true_k_by_k_sum_of_squared_differences(xp):
    _, noisy = _noisy((24, 24))
    dist = to_numpy(band_distances(xp.asarray(noisy), np.array([3, 9]), np.array([0, 12]), 8, 7))
    offsets = window_offsets(7)
    for o in (0, 10, 30, 48):
        dy, dx = offsets[o]
        expected = ((noisy[9:17, 12:20] - noisy[9 + dy : 17 + dy, 12 + dx : 20 + dx]) ** 2).sum()
        assert dist[o, 1, 1] == pytest.approx(expected, rel=2.0**-20)  # rounded to 20 bits


def test_distances_keep_20_fraction_bits_16_in_float32(xp):
    odd = 0.75 + 2.0**-22 + 2.0**-30
    d = xp.asarray([3.0, 1 + 2.0**-19, 1 + 2.0**-22, odd, 2 - 2.0**-30, 0.0, -1.0, np.inf])
    # 0.75 = 1.5 x 2^-1: its last kept bit is 2^-21, so 2^-22 + 2^-30 is above half of it; 2 - 2^-30 carries
    want = [3.0, 1 + 2.0**-19, 1.0, 0.75 + 2.0**-21, 2.0, 0.0, -1.0, np.inf]
    assert to_numpy(rounded_distance(d)).tolist() == want
    d32 = xp.asarray([1 + 2.0**-15, 1 + 2.0**-18, 5.0], dtype=xp.float32)
    got = rounded_distance(d32)
    assert got.dtype == xp.float32 and to_numpy(got).tolist() == [1 + 2.0**-15, 1.0, 5.0]


@pytest.mark.parametrize("stage", ["hard", "both"])
def test_ties_on_paper_are_ties_in_both_forms(xp, stage):
    # found by the thorough fuzz profile: blocks of 9s and two outliers, on the 1/65535 scale, give
    # distances equal on paper that box sums and block sums round differently (2e-4 apart before)
    image = np.full((7, 16), 9, np.uint16)
    image[0, 0], image[5, 2] = 1, 0
    sigma = 9 / 65535
    fast = to_numpy(bm3d(xp.asarray(image), sigma, stage=stage))
    ref = to_numpy(bm3d_reference(xp.asarray(image), sigma, stage=stage))
    np.testing.assert_allclose(fast / sigma, ref / sigma, rtol=0, atol=1e-12)


# --- the whole algorithm --------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["hard", "both"])
@pytest.mark.parametrize("shape", [(32, 32), (29, 35)])
def test_vectorised_form_equals_the_reference_loop(xp, stage, shape):
    _, noisy = _noisy(shape)
    fast = to_numpy(bm3d(xp.asarray(noisy), SIGMA, stage=stage))
    ref = to_numpy(bm3d_reference(xp.asarray(noisy), SIGMA, stage=stage))
    np.testing.assert_allclose(fast, ref, atol=1e-12)


def test_high_noise_profile_vectorised_equals_reference(xp):
    _, noisy = _noisy((30, 30), sigma=50 / 255)
    np.testing.assert_allclose(
        to_numpy(bm3d(xp.asarray(noisy), 50 / 255)),
        to_numpy(bm3d_reference(xp.asarray(noisy), 50 / 255)),
        atol=1e-12,
    )


def test_constant_image_stays_constant(xp):
    # step 1 keeps the one non-zero coefficient (the DC) as it is
    np.testing.assert_allclose(to_numpy(bm3d(xp.full((40, 37), 0.3), SIGMA, stage="hard")), 0.3, atol=1e-12)
    # step 2 multiplies it by the empirical Wiener weight B^2 / (B^2 + sigma^2), B = 0.3 k sqrt(N)
    B = 0.3 * 8 * np.sqrt(32)
    out = to_numpy(bm3d(xp.full((40, 37), 0.3), SIGMA))
    np.testing.assert_allclose(out, 0.3 * B**2 / (B**2 + SIGMA**2), rtol=1e-12)


def test_tiny_sigma_returns_the_input(xp):
    _, noisy = _noisy((40, 40))
    np.testing.assert_allclose(to_numpy(bm3d(xp.asarray(noisy), 1e-6)), noisy, atol=1e-5)


def test_transposed_image_gives_transposed_result(xp):
    _, noisy = _noisy((36, 44))
    out = to_numpy(bm3d(xp.asarray(noisy), SIGMA))
    out_t = to_numpy(bm3d(xp.asarray(np.ascontiguousarray(noisy.T)), SIGMA))
    np.testing.assert_allclose(out_t, out.T, atol=1e-6)


def test_float32_within_a_hundredth_of_a_db_of_float64(xp):
    clean, noisy = _noisy((64, 64))
    p64 = psnr(clean, to_numpy(bm3d(xp.asarray(noisy), SIGMA)), data_range=1)
    out32 = bm3d(xp.asarray(noisy.astype(np.float32)), SIGMA)
    assert out32.dtype == np.float32
    assert abs(psnr(clean, to_numpy(out32).astype(np.float64), data_range=1) - p64) < 0.01


def test_denoises_a_real_image_close_to_the_bm3d_package():
    package = pytest.importorskip("bm3d")
    clean, noisy = _noisy((64, 64))
    ours = psnr(clean, bm3d(noisy, SIGMA), data_range=1)
    theirs = psnr(clean, package.bm3d(noisy, sigma_psd=SIGMA), data_range=1)
    assert ours > psnr(clean, noisy, data_range=1) + 6 and ours > theirs - 0.3


def test_image_smaller_than_a_block_is_reflect_padded_like_scikit_image():
    _, noisy = _noisy((5, 30))
    padded = np.pad(noisy, ((1, 2), (0, 0)), mode="reflect")  # to the 8-pixel block
    np.testing.assert_allclose(bm3d(noisy, SIGMA), bm3d(padded, SIGMA)[1:6], atol=1e-12)
    assert bm3d(noisy[:1, :3], SIGMA).shape == (1, 3)


def test_integer_images_are_converted_like_img_as_float():
    img = (load_image("camera")[:32, :32] * 255).astype(np.uint8)
    np.testing.assert_allclose(bm3d(img, SIGMA), bm3d(img / 255.0, SIGMA), atol=1e-12)


# --- memory -------------------------------------------------------------------------------------


def test_max_batch_bytes_bounds_the_traced_peak():
    _, noisy = _noisy((40, 72))
    fixed = 12 * noisy.size * 8  # image, basic estimate, float64 accumulators and bincount results
    peaks = []
    for cap in (2 * 2**20, 6 * 2**20):
        with PeakMemory(np) as pm:
            bm3d(noisy, SIGMA, max_batch_bytes=cap)
        assert pm.peak <= cap + fixed, (cap, pm.peak, cap + fixed)
        peaks.append(pm.peak)
    assert peaks[0] < peaks[1]  # the cap is what limits the peak
    with pytest.raises(ValueError, match="max_batch_bytes must be at least"):
        bm3d(noisy, SIGMA, max_batch_bytes=1000)


def test_the_result_does_not_depend_on_the_band_size():
    _, noisy = _noisy((48, 40))
    np.testing.assert_allclose(bm3d(noisy, SIGMA, max_batch_bytes=2 * 2**20), bm3d(noisy, SIGMA), atol=1e-12)


@pytest.mark.parametrize("a", [256.0, 2.0**-12])
def test_data_range_makes_bm3d_scale_equivariant(xp, a):
    # bm3d(a x, a sigma, data_range=a) = a bm3d(x, sigma): exactly for a power of 2
    _, noisy = _noisy((40, 36))
    want = to_numpy(bm3d(xp.asarray(noisy), SIGMA))
    got = to_numpy(bm3d(xp.asarray(noisy * a), SIGMA * a, data_range=a)) / a
    np.testing.assert_array_equal(got, want)
    # the high-noise profile is chosen by 255 sigma / data_range: at 255 x 50/255 it is picked as at 50/255
    got = to_numpy(bm3d(xp.asarray(noisy * a), 50 / 255 * a, data_range=a)) / a
    np.testing.assert_array_equal(got, to_numpy(bm3d(xp.asarray(noisy), 50 / 255)))


def test_without_data_range_a_0_255_image_is_matched_on_the_wrong_scale():
    # what data_range is for: the same image on [0, 255] without it loses 0.2 dB here (measured)
    clean, noisy = _noisy((48, 48))
    on_unit = psnr(clean, bm3d(noisy, SIGMA))
    with_range = psnr(clean, bm3d(noisy * 255, SIGMA * 255, data_range=255) / 255)
    without = psnr(clean, bm3d(noisy * 255, SIGMA * 255) / 255)
    assert abs(with_range - on_unit) < 0.01 and without < on_unit - 0.1, (on_unit, with_range, without)


def test_match_threshold_is_tau_times_block_area_on_the_unit_scale():
    hard = bm3d_profile(25.0)[0]
    assert match_threshold(hard) == pytest.approx(2500 * 64 / 255**2)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image, sigma, kwargs, error, match",
    [
        (np.full((16, 16), np.nan), 0.1, {}, ValueError, "image must be finite"),
        (np.zeros((16, 16)), 0.0, {}, ValueError, "sigma must be finite and > 0"),
        (np.zeros((16, 16)), -1.0, {}, ValueError, "sigma"),
        (np.zeros((16, 16)), float("inf"), {}, ValueError, "sigma"),
        (np.zeros((16, 16)), "0.1", {}, TypeError, "sigma must be a real number"),
        (np.zeros(16), 0.1, {}, ValueError, "2-D grey image"),
        (np.zeros((4, 16, 16)), 0.1, {}, ValueError, "2-D grey image"),
        (np.zeros((16, 16, 3)), 0.1, {}, ValueError, "colour image: pass channel_axis=-1"),
        (np.zeros((0, 16)), 0.1, {}, ValueError, "empty"),
        (np.zeros((16, 16), complex), 0.1, {}, TypeError, "complex|real"),
        ([[0.0] * 16] * 16, 0.1, {}, TypeError, "image must be a NumPy or CuPy array"),
        (np.zeros((16, 16)), 0.1, {"stage": "wiener"}, ValueError, "stage must be one of"),
        (np.zeros((16, 16)), 0.1, {"max_batch_bytes": True}, TypeError, "max_batch_bytes"),
        (np.zeros((16, 16)), 0.1, {"max_batch_bytes": -5}, ValueError, "max_batch_bytes must be > 0"),
        (np.zeros((16, 16)), 0.1, {"data_range": 0}, ValueError, "data_range must be finite and > 0"),
        (np.zeros((16, 16)), 0.1, {"data_range": float("nan")}, ValueError, "data_range"),
        (np.zeros((16, 16)), 0.1, {"data_range": "255"}, TypeError, "data_range must be a real number"),
    ],
)
def test_bad_input_gets_a_one_line_error(image, sigma, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        bm3d(image, sigma, **kwargs)
    assert "\n" not in str(info.value)


# --- colour (CBM3D) -------------------------------------------------------------------------------


def _noisy_rgb(shape=(30, 30), seed=0):
    from nlref.data import load_image as load

    clean = load("astronaut")[200 : 200 + shape[0], 200 : 200 + shape[1]].astype(np.float64)
    return clean, clean + np.random.default_rng(seed).normal(0, SIGMA, clean.shape)


@pytest.mark.parametrize("channel_axis", [-1, 0])
def test_colour_vectorised_form_equals_the_reference_loop(xp, channel_axis):
    _, noisy = _noisy_rgb()
    noisy = np.ascontiguousarray(np.moveaxis(noisy, -1, channel_axis))
    fast = to_numpy(bm3d(xp.asarray(noisy), SIGMA, channel_axis=channel_axis))
    ref = to_numpy(bm3d_reference(xp.asarray(noisy), SIGMA, channel_axis=channel_axis))
    assert fast.shape == noisy.shape
    np.testing.assert_allclose(fast, ref, atol=1e-12)


def test_grey_stored_as_rgb_is_denoised_as_grey_at_the_luminance_noise(xp):
    # opponent space: Y = (R + G + B) / 3 = g and zero chrominance; Y's noise is sigma / sqrt(3)
    _, g = _noisy((32, 36))
    rgb = np.stack([g, g, g], axis=-1)
    out = to_numpy(bm3d(xp.asarray(rgb), SIGMA, channel_axis=-1))
    grey = to_numpy(bm3d(xp.asarray(g), SIGMA / np.sqrt(3)))
    for c in range(3):
        np.testing.assert_allclose(out[..., c], grey, atol=1e-9)


def test_colour_denoises_close_to_the_bm3d_package():
    package = pytest.importorskip("bm3d")
    clean, noisy = _noisy_rgb((48, 48))
    ours = psnr(clean, bm3d(noisy, SIGMA, channel_axis=-1), data_range=1)
    theirs = psnr(clean, package.bm3d_rgb(noisy, SIGMA), data_range=1)
    assert ours > psnr(clean, noisy, data_range=1) + 6 and ours > theirs - 0.3


@pytest.mark.parametrize(
    "shape, channel_axis, error, match",
    [
        ((16, 16, 3), 3, ValueError, "out of range"),
        ((16, 16, 3), 1.5, TypeError, "channel_axis must be None or an int"),
        ((16, 16, 2), -1, ValueError, "needs 3 \\(RGB\\) channels"),
        ((16, 16, 4), -1, ValueError, "needs 3 \\(RGB\\) channels"),
        ((16, 16), -1, ValueError, "must be 3-D"),
        ((16, 16, 4), None, ValueError, "pass channel_axis=-1"),
    ],
)
def test_bad_colour_input_gets_a_one_line_error(shape, channel_axis, error, match):
    with pytest.raises(error, match=match) as info:
        bm3d(np.zeros(shape), 0.1, channel_axis=channel_axis)
    assert "\n" not in str(info.value)
