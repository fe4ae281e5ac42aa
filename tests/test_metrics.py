"""PSNR and SSIM against scikit-image's metrics and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from nlref.backend import asarray
from nlref.metrics import default_data_range, psnr, ssim


def test_psnr_by_hand():
    assert psnr(np.zeros(4), np.full(4, 0.1), data_range=1.0) == pytest.approx(20.0, abs=1e-12)
    assert psnr(np.zeros(3), np.zeros(3), data_range=1.0) == math.inf


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_psnr_equals_scikit_image_with_default_data_range(xp, rng, dtype):
    if np.dtype(dtype).kind == "u":
        ref = rng.integers(0, np.iinfo(dtype).max, (20, 21)).astype(dtype)
        img = rng.integers(0, np.iinfo(dtype).max, (20, 21)).astype(dtype)
    else:
        ref, img = rng.random((20, 21)).astype(dtype), rng.random((20, 21)).astype(dtype)
    expected = peak_signal_noise_ratio(ref, img)
    assert psnr(asarray(ref, xp), asarray(img, xp)) == pytest.approx(expected, rel=1e-6)


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
