"""Sample images and seeded noise."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from nlref.backend import asarray, to_numpy
from nlref.data import SAMPLE_IMAGES, add_gaussian_noise, load_image


@pytest.mark.parametrize("name", sorted(SAMPLE_IMAGES))
def test_load_image_scales_the_scikit_image_sample_to_unit_range(name):
    raw = getattr(skimage.data, name)()
    image = load_image(name)
    assert image.dtype == np.float32 and image.shape == raw.shape
    np.testing.assert_allclose(image, raw / 255.0, atol=1e-7)
    np.testing.assert_array_equal(load_image(name, dtype=None), raw)


def test_unknown_image_and_integer_dtype_are_refused():
    with pytest.raises(ValueError, match="name"):
        load_image("lena")
    with pytest.raises(TypeError, match="dtype"):
        load_image("camera", dtype=np.uint16)


def test_noise_is_seeded_and_has_the_requested_sigma(xp):
    clean = asarray(np.zeros((256, 256), np.float32), xp)
    a = add_gaussian_noise(clean, 0.1, seed=7)
    b = add_gaussian_noise(clean, 0.1, seed=7)
    c = add_gaussian_noise(clean, 0.1, seed=8)
    assert a.dtype == np.float32 and type(a) is type(clean)
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert not np.array_equal(to_numpy(a), to_numpy(c))
    assert abs(float(to_numpy(a).std()) - 0.1) < 0.002
    assert abs(float(to_numpy(a).mean())) < 0.002


def test_noise_refuses_integer_images_and_negative_sigma():
    with pytest.raises(TypeError, match="floating"):
        add_gaussian_noise(np.zeros((4, 4), np.uint8), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        add_gaussian_noise(np.zeros((4, 4)), -0.1)
