"""PSNR and SSIM against scikit-image's metrics and hand computations."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from nlref.backend import asarray
from nlref.metrics import default_data_range, psnr, ssim


def test_psnr_by_hand():
    assert psnr(np.zeros(4), np.full(4, 0.1), data_range=1.0) == pytest.approx(20.0, abs=1e-12)
    assert psnr(np.zeros(3), np.zeros(3), data_range=1.0) == math.inf


def _image_pair(rng, dtype, signed_values):
    """Two random images of ``dtype``; with ``signed_values`` the reference has negative values."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        lo = info.min if signed_values else 0
        draw = lambda: rng.integers(lo, int(info.max) + 1, (20, 21)).astype(dtype)  # noqa: E731
    else:
        lo = -1.0 if signed_values else 0.0
        draw = lambda: rng.uniform(lo, 1.0, (20, 21)).astype(dtype)  # noqa: E731
    return draw(), draw()


@pytest.mark.parametrize("signed_values", [False, True], ids=["non-negative", "with-negatives"])
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint8, np.uint16, np.float32, np.float64])
def test_psnr_equals_scikit_image_with_default_data_range(xp, rng, dtype, signed_values):
    if signed_values and np.dtype(dtype).kind == "u":
        pytest.skip("unsigned images have no negative values")
    ref, img = _image_pair(rng, dtype, signed_values)
    expected = peak_signal_noise_ratio(ref, img)
    rel = 1e-6 if dtype == np.float32 else 1e-9  # scikit-image computes float32 images in float32
    assert psnr(asarray(ref, xp), asarray(img, xp)) == pytest.approx(expected, rel=rel)


def test_default_data_range_of_signed_integers_depends_on_the_sign_of_the_reference():
    # scikit-image: dmax for a non-negative reference, dmax - dmin otherwise (6 dB apart on int16)
    assert default_data_range(np.array([0, 5], dtype=np.int16)) == 32767
    assert default_data_range(np.array([-1, 5], dtype=np.int16)) == 65535
    assert default_data_range(np.array([0, 5], dtype=np.int8)) == 127
    assert default_data_range(np.array([True, False])) == 1


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint8, np.uint16])
def test_ssim_default_data_range_is_scikit_images_for_integers(rng, dtype):
    ref, img = _image_pair(rng, dtype, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-image warns that it guessed the range
        expected = structural_similarity(ref, img)
    assert ssim(ref, img) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("metric", [psnr, ssim])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_metrics_refuse_nan_and_inf(metric, bad):
    a = np.zeros((8, 8))
    b = a.copy()
    b[2, 3] = bad
    with pytest.raises(ValueError, match="image must be finite"):
        metric(a, b, data_range=1.0)
    with pytest.raises(ValueError, match="reference must be finite"):
        metric(b, a, data_range=1.0)


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_metrics_refuse_empty_and_complex_images(metric):
    with pytest.raises(ValueError, match="reference must not be empty"):
        metric(np.zeros((0, 4)), np.zeros((0, 4)), data_range=1.0)
    with pytest.raises(TypeError, match="image must be a real image.*complex"):
        metric(np.zeros((8, 8)), np.zeros((8, 8), dtype=complex), data_range=1.0)


def test_ssim_checks_channel_axis_itself():
    a = np.zeros((8, 8, 3))
    with pytest.raises(ValueError, match="channel_axis=3 is out of range"):
        ssim(a, a, data_range=1.0, channel_axis=3)
    with pytest.raises(TypeError, match="channel_axis must be None or an int"):
        ssim(a, a, data_range=1.0, channel_axis=1.5)


def test_psnr_uses_range_two_for_signed_float_images(rng):
    ref = rng.uniform(-1, 1, (10, 10))
    img = ref + 0.01
    assert default_data_range(ref) == 2.0
    assert psnr(ref, img) == pytest.approx(peak_signal_noise_ratio(ref, img), rel=1e-9)


def test_ssim_equals_scikit_image(xp, rng):
    ref = rng.random((32, 33, 3))
    img = np.clip(ref + 0.1 * rng.standard_normal(ref.shape), 0, 1)
    expected = structural_similarity(ref, img, data_range=1.0, channel_axis=-1)
    assert ssim(asarray(ref, xp), asarray(img, xp), channel_axis=-1) == pytest.approx(expected, rel=1e-9)


def test_metrics_refuse_mixed_backends_shapes_and_bad_ranges():
    a = np.zeros((4, 4))
    with pytest.raises(ValueError, match="shape"):
        psnr(a, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, a, data_range=0)
    with pytest.raises(ValueError, match="data_range"):
        psnr(np.full((4, 4), 3.0), a)
    with pytest.raises(TypeError, match="reference"):
        ssim([[0.0]], a)


@pytest.mark.gpu
def test_metrics_refuse_a_numpy_cupy_mix(xp):
    if xp is np:
        pytest.skip("needs CuPy")
    with pytest.raises(TypeError, match="mixed"):
        psnr(np.zeros(4), xp.zeros(4), data_range=1.0)
