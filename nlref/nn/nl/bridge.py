"""Non-local means *is* a non-local operation: the bridge between nlref's two halves.

Wang et al. (CVPR 2018, Sec. 3.1) present their block as a generalisation of
non-local means (Buades, Coll, Morel, CVPR 2005).  This module makes the claim
executable: grey-level NLM is one call of :func:`nlref.nn.nonlocal_op_forward`
with

* x_j = the patch around pixel j, flattened and divided by sqrt(patch area),
  so that ``||x_i - x_j||^2`` is the *mean* squared patch difference ``d2(i, j)``
  of :func:`nlref.denoise.nl_means_pixelwise` with ``patch_weights="uniform"``;
* g(x_j) = the centre pixel v(j);
* f(x_i, x_j) = exp(-||x_i - x_j||^2 / h^2) for j in the search window of i
  (``|j - i| <= patch_distance`` on every axis), 0 elsewhere;
* C(x) = sum_j f(x_i, x_j).

The op has no "distance" function, and needs none: since
``-||a - b||^2 = 2 a.b - ||a||^2 - ||b||^2`` and the ``-||x_i||^2`` term is the
same for every j, it cancels in C(x).  So NLM is an *embedded Gaussian* with
``theta(x) = 2 x / h^2``, ``phi(x) = x`` and a per-key bias ``-||x_j||^2 / h^2``,
masked to the search window -- self-attention with fixed, hand-made embeddings.

scikit-image's habit (fast mode) of skipping the weights below exp(-5) is one
more restriction of j, so it joins the mask (``cutoff=5``).  The mask makes the
affinity (P, P) for P pixels: this is for small images
(a 48 x 48 image is 5.3 M entries); :mod:`nlref.denoise` is the fast route.
Only the noise-free weighting is expressible (``sigma = 0``): the IPOL clamp
``max(d2 - 2 sigma^2, 0)`` is not of the inner-product form.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ..._validation import as_tuple, check_array, check_finite, check_positive
from ...backend import as_float_image, get_namespace
from ._checks import DEFAULT_CHUNK_SIZE
from .op import nonlocal_op_forward
from .window import local_window_mask

__all__ = ["patch_vectors", "search_window_mask", "nlm_nonlocal_inputs", "nl_means_as_nonlocal"]


def _check_image(image, patch_size, patch_distance, h):
    check_array(image, "image")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be a 2-D or 3-D grey image, received shape {tuple(image.shape)}")
    patch = as_tuple(patch_size, image.ndim, "patch_size")
    if any(p < 1 or p % 2 == 0 for p in patch):
        raise ValueError(f"patch_size must be odd and positive, received {patch_size!r}")
    if any(n < p for n, p in zip(image.shape, patch)):
        raise ValueError(f"image of shape {tuple(image.shape)} is smaller than the patch {patch}")
    dist = as_tuple(patch_distance, image.ndim, "patch_distance")
    if any(d < 0 for d in dist):
        raise ValueError(f"patch_distance must be >= 0, received {patch_distance!r}")
    check_positive(h, "h")
    check_finite(image, "image")
    return patch, dist


def patch_vectors(image: Any, patch_size: int | tuple[int, ...]) -> Any:
    """Flattened patches around every pixel, scaled so that squared distances are means.

    Parameters
    ----------
    image : ndarray, shape (*S), 2-D or 3-D, float
    patch_size : int or tuple of int (odd)

    Returns
    -------
    ndarray, shape (prod(S), prod(patch_size))
        Row i is the patch around pixel i (C order), borders completed by
        reflection (``numpy.pad(mode="reflect")``, as nlref.denoise does),
        divided by ``sqrt(prod(patch_size))``: ``||x_i - x_j||^2 = d2(i, j)``.
    """
    xp = get_namespace(image)
    patch = as_tuple(patch_size, image.ndim, "patch_size")
    r = [p // 2 for p in patch]
    padded = xp.pad(image, [(ri, ri) for ri in r], mode="reflect")
    # one column per offset k of the patch: the image shifted by k
    cols = [
        padded[tuple(slice(k, k + n) for k, n in zip(off, image.shape))].reshape(-1)
        for off in itertools.product(*(range(p) for p in patch))
    ]
    return xp.stack(cols, axis=1) / math.sqrt(len(cols))  # a Python float keeps float32 float32


def search_window_mask(shape: tuple[int, ...], patch_distance: int | tuple[int, ...], *, xp: Any = np) -> Any:
    """Boolean (P, P) mask, True where pixel j lies in the search window of pixel i.

    ``|j_a - i_a| <= patch_distance_a`` on every axis a; windows are clipped by
    the image border, as in :func:`nlref.denoise.nl_means_pixelwise`.  NLM's
    search window is the local window of the non-local block:
    ``local_window_mask(shape, patch_distance)`` (:mod:`nlref.nn.nl.window`).
    """
    dist = as_tuple(patch_distance, len(shape), "patch_distance")
    return local_window_mask(shape, dist, xp=xp)


def nlm_nonlocal_inputs(
    image: Any,
    *,
    patch_size: Any = 7,
    patch_distance: Any = 11,
    h: float = 0.1,
    cutoff: float | None = None,
    preserve_range: bool = False,
) -> dict[str, Any]:
    """The arguments of :func:`nlref.nn.nonlocal_op_forward` that make it non-local means.

    Parameters are those of :func:`nl_means_as_nonlocal`.

    Returns
    -------
    dict
        ``query`` = theta = 2 x / h^2 (1, P, A), ``key`` = phi = x (1, P, A),
        ``value`` = g = centre pixels (1, P, 1), ``key_bias`` = -||x_j||^2 / h^2
        (1, P), ``mask`` = search window (P, P) (and, with ``cutoff``, the pairs
        with ``d2 <= cutoff * h^2``), ``f = "embedded_gaussian"``;
        A = prod(patch_size), P = number of pixels.
    """
    patch, dist = _check_image(image, patch_size, patch_distance, h)
    if cutoff is not None:
        check_positive(cutoff, "cutoff")
    u = as_float_image(image, preserve_range=preserve_range)
    xp = get_namespace(u)
    x = patch_vectors(u, patch)  # (P, A)
    sq = (x * x).sum(axis=1)  # ||x_j||^2, (P,)
    inv_h2 = 1.0 / (h * h)
    mask = search_window_mask(u.shape, dist, xp=xp)
    if cutoff is not None:
        d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)  # ||x_i - x_j||^2, (P, P)
        mask &= d2 * inv_h2 <= cutoff
        mask[xp.arange(mask.shape[0]), xp.arange(mask.shape[0])] = True  # d2(i, i) = 0 up to round-off
    return dict(
        query=(2.0 * inv_h2) * x[None],
        key=x[None],
        value=u.reshape(1, -1, 1),
        key_bias=-inv_h2 * sq[None],
        mask=mask,
        f="embedded_gaussian",
    )


def nl_means_as_nonlocal(
    image: Any,
    *,
    patch_size: Any = 7,
    patch_distance: Any = 11,
    h: float = 0.1,
    cutoff: float | None = None,
    preserve_range: bool = False,
    memory: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Any:
    """Grey-level non-local means computed by the non-local operation of Wang et al.

    ``NL(v)(i) = sum_j exp(-d2(i, j) / h^2) v(j) / sum_j exp(-d2(i, j) / h^2)``
    over the search window (Buades, Coll, Morel, CVPR 2005, Eq. 1-2), written as
    ``y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j)`` (Wang et al., CVPR 2018, Eq. 1).

    Parameters
    ----------
    image : ndarray (NumPy or CuPy), shape (*S), 2-D or 3-D grey
    patch_size, patch_distance, h
        As in :func:`nlref.denoise.nl_means_pixelwise` (``patch_weights="uniform"``,
        ``sigma=0``): d2 is the mean squared difference over the patch.
    cutoff : float, optional
        Drop the weights below ``exp(-cutoff)``, i.e. the pairs with
        ``d2 > cutoff * h^2`` (scikit-image's fast mode skips those below
        exp(-5)).  None (default) keeps every pixel of the window.
        The restriction goes into the op's ``mask``, beside the search window.
    preserve_range : bool
        Keep integer values as they are instead of scaling them to [0, 1].
    memory, chunk_size
        Passed to :func:`nlref.nn.nonlocal_op_forward`.

    Returns
    -------
    ndarray, shape (*S)
        With ``cutoff=None``, equal up to round-off to ``nl_means_pixelwise(image,
        patch_size, patch_distance, h, patch_weights="uniform")``.
    """
    inputs = nlm_nonlocal_inputs(
        image,
        patch_size=patch_size,
        patch_distance=patch_distance,
        h=h,
        cutoff=cutoff,
        preserve_range=preserve_range,
    )
    y, _ = nonlocal_op_forward(**inputs, memory=memory, chunk_size=chunk_size)
    return y.reshape(image.shape)
