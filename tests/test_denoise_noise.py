"""estimate_sigma (Immerkaer 1996, flat pixels only) against the sigma of the added noise."""

from __future__ import annotations

import numpy as np
import pytest

from nlref.backend import asarray
from nlref.data import add_gaussian_noise, load_image
from nlref.denoise import estimate_sigma


@pytest.mark.parametrize("name", ["camera", "astronaut", "coins", "moon"])
@pytest.mark.parametrize("sigma255", [10, 20, 30])
def test_estimate_is_within_ten_percent_on_sample_images(xp, name, sigma255):
    clean = load_image(name).astype(np.float64)
    noisy = add_gaussian_noise(asarray(clean, xp), sigma255 / 255, seed=sigma255)
    estimate = estimate_sigma(noisy, channel_axis=-1 if clean.ndim == 3 else None)
    assert abs(estimate * 255 / sigma255 - 1) < 0.10


@pytest.mark.parametrize("shape,channel_axis", [((256, 256), None), ((24, 64, 64), None), ((3, 128, 128), 0)])
def test_estimate_is_unbiased_on_pure_noise(xp, rng, shape, channel_axis):
    noise = asarray(0.5 + 0.05 * rng.standard_normal(shape), xp)
    assert estimate_sigma(noise, channel_axis=channel_axis) == pytest.approx(0.05, rel=0.03)


def test_estimate_is_not_fooled_by_smooth_ramps(rng):
    yy, xx = np.mgrid[:128, :128] / 128.0
    ramp = 0.3 * yy + 0.2 * xx**2
    noise = 0.02 * rng.standard_normal((128, 128))
    assert estimate_sigma(ramp + noise) == pytest.approx(0.02, rel=0.05)


def test_integer_images_are_estimated_on_the_unit_scale(rng):
    image = np.clip(128 + 10 * rng.standard_normal((128, 128)), 0, 255).astype(np.uint8)
    assert estimate_sigma(image) == pytest.approx(10 / 255, rel=0.1)
    assert estimate_sigma(image, preserve_range=True) == pytest.approx(10, rel=0.1)


def test_agrees_with_scikit_image_wavelet_estimate_on_pure_noise(rng):
    skimage_estimate = pytest.importorskip("skimage.restoration").estimate_sigma
    pytest.importorskip("pywt")
    noise = 0.1 * rng.standard_normal((256, 256))
    assert estimate_sigma(noise) == pytest.approx(skimage_estimate(noise), rel=0.03)


@pytest.mark.parametrize(
    "image,kw,error,match",
    [
        (np.zeros(16), {}, ValueError, "image must have"),
        (np.zeros((2, 16)), {}, ValueError, "at least 3"),
        (np.full((8, 8), np.nan), {}, ValueError, "finite"),
        (np.zeros((8, 8)), {"channel_axis": 2}, ValueError, "channel_axis"),
        ([[0.0]], {}, TypeError, "image"),
    ],
)
def test_bad_input_is_refused(image, kw, error, match):
    with pytest.raises(error, match=match):
        estimate_sigma(image, **kw)
