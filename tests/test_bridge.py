"""Tests of nlref.nn.nl.bridge: non-local means as a call of the non-local operation.

Oracles: nlref.denoise.nl_means_pixelwise (the definition, pixel by pixel, with
uniform patch weights), a plain double loop over pixels written here, and
explicit pairwise patch distances.
"""

from __future__ import annotations

import numpy as np
import pytest

from nlref.backend import asarray, to_numpy
from nlref.denoise import nl_means_pixelwise
from nlref.nn.nl import (
    attention_weights,
    nl_means_as_nonlocal,
    nlm_nonlocal_inputs,
    patch_vectors,
    search_window_mask,
)


def noisy(rng, shape, sigma=0.1):
    base = np.zeros(shape)
    base[tuple(slice(n // 4, 3 * n // 4) for n in shape)] = 1.0  # a bright box: structure to preserve
    return base + sigma * rng.standard_normal(shape)


def loop_nl_means(image, patch_size, patch_distance, h, cutoff=None):
    """Grey NLM, one pixel pair at a time: uniform patch weights, reflected borders,
    search window clipped to the image, weights below exp(-cutoff) dropped."""
    p = (patch_size,) * image.ndim if isinstance(patch_size, int) else patch_size
    d = (patch_distance,) * image.ndim if isinstance(patch_distance, int) else patch_distance
    padded = np.pad(image, [(q // 2, q // 2) for q in p], mode="reflect")
    patch = lambda i: padded[tuple(slice(a, a + q) for a, q in zip(i, p))]  # noqa: E731
    out = np.empty_like(image)
    for i in np.ndindex(image.shape):
        num = den = 0.0
        for j in np.ndindex(image.shape):
            if all(abs(a - b) <= da for a, b, da in zip(i, j, d)):
                d2 = float(((patch(i) - patch(j)) ** 2).mean())
                if cutoff is None or d2 / h**2 <= cutoff:
                    num += np.exp(-d2 / h**2) * image[j]
                    den += np.exp(-d2 / h**2)
        out[i] = num / den
    return out


def test_bridge_equals_a_plain_loop_with_and_without_cutoff(rng):
    image = noisy(rng, (9, 8))
    for cutoff in (None, 5.0, 1.0):
        ours = nl_means_as_nonlocal(image, patch_size=3, patch_distance=2, h=0.2, cutoff=cutoff)
        np.testing.assert_allclose(ours, loop_nl_means(image, 3, 2, 0.2, cutoff), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "shape, patch_size, patch_distance, h",
    [((14, 12), 3, 2, 0.2), ((13, 11), 5, 3, 0.3), ((12, 10), (3, 5), (1, 4), 0.25), ((5, 6, 7), 3, 1, 0.3)],
)
@pytest.mark.parametrize("memory", ["dense", "chunked"])
def test_bridge_equals_pixelwise_non_local_means(xp, rng, shape, patch_size, patch_distance, h, memory):
    image = asarray(noisy(rng, shape), xp)
    ours = nl_means_as_nonlocal(
        image, patch_size=patch_size, patch_distance=patch_distance, h=h, memory=memory, chunk_size=37
    )
    ref = nl_means_pixelwise(
        image, patch_size, patch_distance, h, patch_weights="uniform", distance_scale="patch"
    )
    assert ours.shape == image.shape
    np.testing.assert_allclose(to_numpy(ours), to_numpy(ref), rtol=0, atol=1e-10)


def test_squared_patch_distance_is_the_mean_over_the_patch(rng):
    image = rng.random((9, 8))
    x = patch_vectors(image, 3)
    i, j = 2 * 8 + 3, 6 * 8 + 5  # interior pixels (2, 3) and (6, 5)
    d2 = ((image[1:4, 2:5] - image[5:8, 4:7]) ** 2).mean()
    np.testing.assert_allclose(((x[i] - x[j]) ** 2).sum(), d2, rtol=1e-13)
    # border pixel (0, 0): its patch is completed by reflection, without repeating the edge
    np.testing.assert_allclose(x[0].reshape(3, 3) * 3, image[[1, 0, 1]][:, [1, 0, 1]], rtol=1e-14)


def test_nlm_is_an_embedded_gaussian_with_a_key_bias(xp, rng):
    """exp(-||x_i - x_j||^2 / h^2) / Z_i == softmax_j(theta_i . phi_j + b_j) with
    theta = 2 x / h^2, phi = x, b_j = -||x_j||^2 / h^2 (the ||x_i||^2 term cancels in Z_i)."""
    image, h = noisy(rng, (10, 9)), 0.3
    inp = nlm_nonlocal_inputs(asarray(image, xp), patch_size=3, patch_distance=2, h=h)
    x = to_numpy(inp["key"][0])
    np.testing.assert_allclose(to_numpy(inp["query"][0]), 2 * x / h**2, rtol=1e-15)
    np.testing.assert_allclose(to_numpy(inp["key_bias"][0]), -(x**2).sum(1) / h**2, rtol=1e-15)
    # the NLM weights from explicit pairwise distances
    dist2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    window = to_numpy(inp["mask"])
    w = np.where(window, np.exp(-dist2 / h**2), 0.0)
    w /= w.sum(axis=1, keepdims=True)
    att = attention_weights(
        inp["query"], inp["key"], f="embedded_gaussian", key_bias=inp["key_bias"], mask=inp["mask"]
    )
    np.testing.assert_allclose(to_numpy(att[0]), w, rtol=1e-12, atol=1e-15)


def test_search_window_is_clipped_at_the_border():
    mask = search_window_mask((4, 5), 1)
    assert mask.shape == (20, 20)
    assert mask[0].sum() == 4  # corner: 2 x 2 window
    assert mask[1 * 5 + 2].sum() == 9  # interior: 3 x 3
    np.testing.assert_array_equal(mask, mask.T)


def test_float32_image_gives_float32(rng):
    image = noisy(rng, (8, 8)).astype(np.float32)
    out = nl_means_as_nonlocal(image, patch_size=3, patch_distance=2, h=0.2)
    assert out.dtype == np.float32
    ref = nl_means_pixelwise(image, 3, 2, 0.2, patch_weights="uniform", distance_scale="patch")
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_bad_input_is_rejected(rng):
    image = rng.random((8, 8))
    for kwargs, err, word in [
        (dict(image=image[None, None]), ValueError, "image"),
        (dict(patch_size=4), ValueError, "patch_size"),
        (dict(patch_distance=-1), ValueError, "patch_distance"),
        (dict(h=0.0), ValueError, "h"),
        (dict(cutoff=-1.0), ValueError, "cutoff"),
        (dict(image=image[:2]), ValueError, "smaller than the patch"),
        (dict(image=[[1.0]]), TypeError, "image"),
    ]:
        args = dict(image=image, patch_size=3, patch_distance=2, h=0.1) | kwargs
        with pytest.raises(err, match=word):
            nl_means_as_nonlocal(args.pop("image"), **args)
