"""IPOL 2011 parameters and nl_means_ipol."""

from __future__ import annotations

import numpy as np
import pytest

from nlref.backend import asarray, to_numpy
from nlref.data import add_gaussian_noise, load_image
from nlref.denoise import ipol_parameters, nl_means, nl_means_ipol, nl_means_pixelwise
from nlref.metrics import psnr


@pytest.mark.parametrize(
    "sigma255,colour,expected",
    [
        (10, False, (3, 10, 0.40)),
        (15, False, (3, 10, 0.40)),
        (20, False, (5, 10, 0.40)),
        (40, False, (7, 17, 0.35)),
        (60, False, (9, 17, 0.35)),
        (90, False, (11, 17, 0.30)),
        (150, False, (11, 17, 0.30)),
        (20, True, (3, 10, 0.55)),
        (30, True, (5, 17, 0.40)),
        (80, True, (7, 17, 0.35)),
    ],
)
def test_parameters_follow_the_article_table_on_the_0_255_scale(sigma255, colour, expected):
    p = ipol_parameters(sigma255 / 255, colour=colour)
    s, d, factor = expected
    assert (p["patch_size"], p["patch_distance"]) == (s, d)
    assert p["h"] == pytest.approx(factor * sigma255 / 255)


def test_ipol_is_nl_means_with_the_ipol_weighting_and_table(xp, rng):
    image = asarray(rng.random((20, 22)), xp)
    sigma = 0.05
    expected = nl_means(
        image, sigma=sigma, weighting="ipol", distance_scale="patch", **ipol_parameters(sigma)
    )
    np.testing.assert_array_equal(to_numpy(nl_means_ipol(image, sigma)), to_numpy(expected))


def test_ipol_equals_the_pixelwise_definition_in_colour(rng):
    image = rng.random((12, 13, 3))
    expected = nl_means_pixelwise(
        image,
        3,
        10,
        0.55 * 0.05,
        sigma=0.05,
        patch_weights="uniform",
        weighting="ipol",
        distance_scale="patch",
        channel_axis=-1,
    )
    np.testing.assert_allclose(nl_means_ipol(image, 0.05, channel_axis=-1), expected, atol=1e-12)


def test_centre_weight_is_the_largest_other_weight():
    # (4, 4) has one similar patch, around (4, 6); all others are ~exp(-44) away.
    image = np.zeros((9, 9))
    image[4, 4], image[4, 6] = 1.0, 0.9
    h = 0.05
    w1 = np.exp(-(0.1**2 / 9) / h**2)
    ipol = nl_means(image, 3, 4, h, weighting="ipol", distance_scale="patch")
    assert ipol[4, 4] == pytest.approx((w1 * 1.0 + w1 * 0.9) / (2 * w1), abs=1e-12)
    plain = nl_means(image, 3, 4, h, distance_scale="patch")
    assert plain[4, 4] == pytest.approx((1.0 + w1 * 0.9) / (1 + w1), abs=1e-12)


def test_ipol_denoises_a_real_image(xp):
    clean = load_image("camera")[128:320, 128:320]
    noisy = add_gaussian_noise(asarray(clean, xp), 20 / 255, seed=20)
    out = nl_means_ipol(noisy, 20 / 255)
    assert psnr(asarray(clean, xp), out) > psnr(asarray(clean, xp), noisy) + 5


def test_bad_sigma_is_refused():
    with pytest.raises(ValueError, match="sigma"):
        ipol_parameters(0.0)
    with pytest.raises(ValueError, match="sigma"):
        nl_means_ipol(np.zeros((8, 8)), -1.0)
