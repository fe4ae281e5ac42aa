"""Fuzz: non-local means and the noise estimate, against their definitions.

``nl_means`` is compared with ``nl_means_pixelwise`` (the definition, pixel by
pixel) on small images of every layout (2-D, 3-D, 4-D; grey or with channels at
any axis), every supported dtype and adversarial values (huge and tiny finite
numbers, constants); ``estimate_sigma`` with a direct NumPy formula of
Immerkaer's estimator.  Invalid inputs (NaN/inf, wrong types, empty arrays,
bad parameters) must give one clear ``ValueError``/``TypeError``; a huge
``patch_distance`` must cost what the image costs and give the clipped result.
``bm3d`` is compared with ``bm3d_reference`` (one reference block at a time) on
grey images of odd shapes (1 x 1, reflect-padded, to 21 x 19), every dtype,
adversarial values and hostile sigma (1e-300 to 1e300 times the image's scale).
Outcomes are counted by :mod:`fuzz_harness`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from fuzz_harness import attempt
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from nlref.backend import as_float_image
from nlref.denoise import (
    bm3d,
    bm3d_reference,
    estimate_sigma,
    nl_means,
    nl_means_dask,
    nl_means_ipol,
    nl_means_pixelwise,
)

pytestmark = pytest.mark.fuzz

DTYPES = (np.float32, np.float64, np.uint8, np.uint16, np.int16)
# spatial shapes small enough for the pixel-wise oracle (<= 81 pixels)
SPATIAL = {2: st.integers(3, 9), 3: st.integers(3, 4), 4: st.just(3)}


def _elements(dtype: np.dtype) -> st.SearchStrategy:
    if dtype.kind == "f":
        return st.floats(allow_nan=False, allow_infinity=False, width=8 * dtype.itemsize)
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


@st.composite
def images(draw, dtypes=DTYPES, max_channels: int = 3):
    """``(image, channel_axis)``: 2 to 4 spatial axes, optional channel axis anywhere, any dtype."""
    n = draw(st.sampled_from((2, 2, 3, 4)))
    shape = [draw(SPATIAL[n]) for _ in range(n)]
    channel_axis = None
    if draw(st.booleans()):
        position = draw(st.integers(0, n))
        shape.insert(position, draw(st.integers(1, max_channels)))
        channel_axis = draw(st.sampled_from((position, position - n - 1)))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    kind = draw(st.sampled_from(("any", "smooth", "constant")))
    if kind == "any":
        image = draw(hnp.arrays(dtype, tuple(shape), elements=_elements(dtype)))
    else:
        seed = draw(st.integers(0, 2**16))
        exponent = draw(st.sampled_from((0, -300, -30, 30, 300) if dtype == np.float64 else (0, -30, 30)))
        values = np.random.default_rng(seed).random(tuple(shape))
        if kind == "constant":
            values[...] = values.flat[0]
        if dtype.kind == "f":
            with np.errstate(over="ignore"):
                image = np.ldexp(values, exponent * 3).astype(dtype)
            image[~np.isfinite(image)] = np.finfo(dtype).max
        else:
            info = np.iinfo(dtype)
            image = (info.min + values * (float(info.max) - info.min)).astype(dtype)
    return image, channel_axis


def _scale(image: np.ndarray, preserve_range: bool) -> float:
    u = as_float_image(image, preserve_range=preserve_range)
    m = float(np.abs(u.astype(np.float64)).max())
    return m if m > 0 else 1.0


@given(
    data=images(),
    patch=st.sampled_from((1, 3, 7)),  # 7: larger than most of these images (completed by reflection)
    distance=st.sampled_from((0, 1, 2, 10**6)),
    log_h=st.floats(-3, 2),
    sigma_ratio=st.sampled_from((0.0, 0.1, 0.5)),
    fast_mode=st.booleans(),
    weighting=st.sampled_from(("skimage", "ipol")),
    preserve_range=st.booleans(),
    batched=st.booleans(),
)
def test_nl_means_matches_the_pixelwise_definition(
    data, patch, distance, log_h, sigma_ratio, fast_mode, weighting, preserve_range, batched
):
    image, channel_axis = data
    scale = _scale(image, preserve_range)
    h = min(10.0**log_h * scale, 1e300)
    sigma = sigma_ratio * h
    kwargs = dict(channel_axis=channel_axis, weighting=weighting, preserve_range=preserve_range)
    cap = {"max_batch_bytes": 1 << 22} if batched else {}
    got = attempt("nl_means", nl_means, image, patch, distance, h, fast_mode, sigma, **kwargs, **cap)
    # the oracle works in float64 (so float32 over- and underflow cannot hide in it), except
    # for IPOL's centre weight, which jumps from the largest other weight to 1 when those underflow
    wide = image.astype(np.float64) if image.dtype == np.float32 and weighting == "skimage" else image
    ref = nl_means_pixelwise(
        wide, patch, distance, h, sigma=sigma, patch_weights="uniform" if fast_mode else "gaussian", **kwargs
    )
    assert got.error is None, got.error  # every one of these calls is valid
    assert got.value.shape == image.shape
    assert got.value.dtype == (np.float32 if image.dtype == np.float32 else np.float64)
    tol = 2e-3 if got.value.dtype == np.float32 else 1e-9
    np.testing.assert_allclose(got.value / scale, ref / scale, rtol=0, atol=tol)
    got.correct()


@given(data=images(dtypes=(np.float32, np.float64)), distance=st.sampled_from((10**3, 10**9, 2**62)))
@example(data=(np.array([[0.0, 1.7976931348623157e308, 1.7976931348623157e308]] * 3), None), distance=1000)
def test_a_huge_patch_distance_is_clipped_to_the_image(data, distance):
    image, channel_axis = data
    h = 0.3 * _scale(image, False)
    got = attempt("nl_means", nl_means, image, 3, distance, h, channel_axis=channel_axis)
    if got.error is not None:
        return
    # the window is clipped to extent - 1 per axis; in 2-D fast mode's scikit-image form completes it
    # by reflection up to max(extent - 1, 11)
    extent = max(max(image.shape), 12)
    np.testing.assert_array_equal(got.value, nl_means(image, 3, extent, h, channel_axis=channel_axis))
    got.correct()


BAD_IMAGES = {
    "list": [[0.1, 0.2, 0.3]] * 3,
    "None": None,
    "complex": np.ones((5, 5), complex),
    "object": np.full((5, 5), 0.5, dtype=object),
    "str": np.full((5, 5), "a"),
    "empty": np.zeros((0, 5)),
    "empty 3-D": np.zeros((5, 0, 5)),
    "1-D": np.zeros(9),
    "5-D": np.zeros((3,) * 5),
    "nan": np.where(np.eye(5, dtype=bool), np.nan, 0.5),
    "inf": np.where(np.eye(5, dtype=bool), np.inf, 0.5),
    "-inf float32": np.where(np.eye(5, dtype=bool), -np.inf, 0.5).astype(np.float32),
}


@given(
    name=st.sampled_from(sorted(BAD_IMAGES)),
    fn=st.sampled_from(("nl_means", "nl_means_pixelwise", "nl_means_ipol", "estimate_sigma")),
)
def test_invalid_images_are_rejected_clearly(name, fn):
    image = BAD_IMAGES[name]
    calls = {
        "nl_means": lambda: nl_means(image, 3, 2, 0.1),
        "nl_means_pixelwise": lambda: nl_means_pixelwise(image, 3, 2, 0.1),
        "nl_means_ipol": lambda: nl_means_ipol(image, 0.1),
        "estimate_sigma": lambda: estimate_sigma(image),
    }
    attempt(fn, calls[fn], must_fail=True)


ADVERSARIAL = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.complex_numbers(),
    st.text(max_size=3),
    st.lists(st.integers(-3, 12), max_size=5),
    st.tuples(st.integers(-3, 9), st.floats(0, 3)),
)


@given(
    dtype=st.sampled_from(DTYPES + (np.float16, np.bool_)),
    which=st.sampled_from(
        ("patch_size", "patch_distance", "h", "sigma", "channel_axis", "max_batch_bytes", "fast_mode")
    ),
    value=ADVERSARIAL,
)
@example(dtype=np.float32, which="sigma", value=2.5e18)  # 2 sigma^2 beyond float32
def test_adversarial_arguments_give_a_result_or_a_clear_error(dtype, which, value):
    image = (np.random.default_rng(0).random((6, 6, 3)) * 100).astype(dtype)
    kwargs = {"patch_size": 3, "patch_distance": 2, "h": 0.1, "sigma": 0.0, "channel_axis": -1}
    kwargs[which] = value
    got = attempt("nl_means", nl_means, image, **kwargs)
    if got.error is None:
        assert got.value.shape == image.shape
        got.correct()


def _immerkaer(u: np.ndarray) -> float:
    """Immerkaer's estimate of ``u: (C, *S)``: the mean |I * M| over the flatter half (Sobel)."""
    n = u.ndim - 1
    m = np.array([1.0, -2.0, 1.0])
    kernel = m
    for _ in range(n - 1):
        kernel = np.multiply.outer(kernel, m)
    inner = tuple(slice(1, -1) for _ in range(n))
    responses, gradients = [], []
    for c in u:
        responses.append(np.abs(ndimage.correlate(c, kernel, mode="constant")[inner]).ravel())
        g2 = sum(ndimage.sobel(c, axis=ax) ** 2 for ax in range(n))
        gradients.append(g2[inner].ravel())
    r, g = np.concatenate(responses), np.concatenate(gradients)
    return math.sqrt(math.pi / 2) * float(r[g <= np.median(g)].mean()) / 6 ** (n / 2)


# a gradient whose square is subnormal unscaled and 0 at the oracle's safe scale: a tie moves
_SUBNORMAL_TIE = np.zeros((3, 9))
_SUBNORMAL_TIE[0, 0], _SUBNORMAL_TIE[1, 1] = 8.55133001e-160, 512.0


@given(data=images(max_channels=2), preserve_range=st.booleans())
@example(
    data=(np.random.default_rng(0).random((3, 3, 3, 3)).astype(np.float32) * 8e-28, None),
    preserve_range=False,
)
@example(data=(np.random.default_rng(0).random((4, 4)) * 7.5e-272, None), preserve_range=False)
@example(data=(np.diag(np.array([1.15e-8, 2.8e14, 0, 0, 0], np.float32)), None), preserve_range=False)
@example(data=(_SUBNORMAL_TIE, None), preserve_range=False)
def test_estimate_sigma_matches_immerkaer(data, preserve_range):
    image, channel_axis = data
    got = attempt(
        "estimate_sigma", estimate_sigma, image, channel_axis=channel_axis, preserve_range=preserve_range
    )
    if got.error is not None:
        return
    u = as_float_image(image, preserve_range=preserve_range)
    u = u[None] if channel_axis is None else np.moveaxis(u, channel_axis, 0)
    assert math.isfinite(got.value) and got.value >= 0
    # The median split of the gradients is discontinuous in round-off (a tie at 0 or not), so the
    # oracle is computed twice: in the image's dtype at a power-of-two safe scale (exact scaling;
    # the estimate is linear in the image), and in float64 unscaled (where float32 values can
    # neither overflow nor underflow, and float64 ones are as nlref sees them when it does not
    # rescale); nlref must agree with one of them.
    rel = 1e-3 if image.dtype == np.float32 else 1e-9
    k = math.frexp(float(np.abs(u).max()))[1]
    wants = [math.ldexp(_immerkaer(np.ldexp(u, -k)), k)]
    wants.append(_immerkaer(u.astype(np.float64)))
    assert any(got.value == pytest.approx(w, rel=rel, abs=math.ldexp(rel, k)) for w in wants), (
        got.value,
        wants,
    )
    got.correct()


@given(
    data=images(dtypes=(np.float64,)),
    exponent=st.sampled_from((-1060, -1000, -600, -200, -90, 90, 200, 600, 1000)),
    fast_mode=st.booleans(),
)
@example(data=(np.random.default_rng(1).random((5, 5)), None), exponent=-200, fast_mode=True)  # tiny h
@example(data=(np.random.default_rng(1).random((5, 5)), None), exponent=1000, fast_mode=True)
def test_nl_means_commutes_with_a_power_of_two_scale(data, exponent, fast_mode):
    """NL(2^e v; 2^e h) = 2^e NL(v; h): tiny and huge images are denoised like ordinary ones."""
    image, channel_axis = data
    unit = np.ldexp(image, -math.frexp(float(np.abs(image).max()) or 1.0)[1])  # max |unit| in [0.5, 1)
    with np.errstate(under="ignore"):
        scaled = np.ldexp(unit, exponent)
    if not np.isfinite(scaled).all() or np.abs(scaled).max() == 0:
        return
    # values that lost bits as subnormals are not a power-of-two copy of ``unit``: compare with them
    unit = np.ldexp(scaled, -exponent)
    h = 0.3
    got = attempt(
        "nl_means", nl_means, scaled, 3, 2, math.ldexp(h, exponent), fast_mode, channel_axis=channel_axis
    )
    if got.error is not None:
        return
    want = nl_means(unit, 3, 2, h, fast_mode, channel_axis=channel_axis)
    # a subnormal result holds fewer bits: its spacing 2**-1074, in units of 2**exponent
    atol = max(1e-12, math.ldexp(2.0, -1074 - exponent))
    np.testing.assert_allclose(np.ldexp(got.value, -exponent), want, rtol=0, atol=atol)
    got.correct()


# a 1-pixel chunk of tiny values beside a huge pixel: the chunk is scaled up, h with it (overflowed)
_TINY_CHUNK = np.full((3, 6), 3.82993866e-251)
_TINY_CHUNK[0, 0] = 6.27710174e58


@given(data=images(dtypes=(np.float32, np.float64, np.uint8)), chunk=st.integers(1, 4))
@example(data=(_TINY_CHUNK, None), chunk=1)
def test_nl_means_dask_equals_nl_means(data, chunk):
    image, channel_axis = data
    h = 0.2 * _scale(image, False)
    got = attempt("nl_means_dask", nl_means_dask, image, 3, 1, h, channel_axis=channel_axis, chunks=chunk)
    want = nl_means(image, 3, 1, h, channel_axis=channel_axis)
    if got.error is not None:
        return
    out = got.value.compute()
    np.testing.assert_allclose(out / _scale(image, False), want / _scale(image, False), rtol=0, atol=1e-5)
    got.correct()


@given(sigma=st.one_of(st.floats(), st.integers(-5, 5), st.none(), st.text(max_size=2), st.booleans()))
def test_nl_means_ipol_takes_any_sigma_or_refuses_it_clearly(sigma):
    image = np.random.default_rng(3).random((12, 12))
    got = attempt("nl_means_ipol", nl_means_ipol, image, sigma)
    if got.error is None:
        assert got.value.shape == image.shape
        got.correct()


# --- BM3D ---------------------------------------------------------------------------------------


@st.composite
def grey_images(draw, dtypes=DTYPES + (np.float16, np.bool_), colour: bool = False):
    shape = (draw(st.integers(1, 21)), draw(st.integers(1, 19))) + ((3,) if colour else ())
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    kind = draw(st.sampled_from(("any", "smooth", "constant")))
    if kind == "any":
        return draw(hnp.arrays(dtype, shape, elements=None if dtype == np.bool_ else _elements(dtype)))
    values = np.random.default_rng(draw(st.integers(0, 2**16))).random(shape)
    if kind == "constant":
        values[...] = values.flat[0]
    if dtype.kind == "f":
        exponent = draw(st.sampled_from((0, -900, -100, 100, 900) if dtype == np.float64 else (0, -90, 90)))
        with np.errstate(over="ignore", under="ignore"):
            image = np.ldexp(values, exponent).astype(dtype)
        image[~np.isfinite(image)] = np.finfo(dtype).max
        return image
    if dtype == np.bool_:
        return values > 0.5
    info = np.iinfo(dtype)
    return (info.min + values * (float(info.max) - info.min)).astype(dtype)


#: found by the thorough profile: ties on paper that round-off broke differently in the two forms
TIES = np.full((7, 16), 9, np.uint16)
TIES[0, 0], TIES[5, 2] = 1, 0


@given(
    image=st.one_of(grey_images(), grey_images(colour=True)),
    log_sigma=st.floats(-300, 300),
    stage=st.sampled_from(("both", "hard")),
)
@example(image=np.ones((1, 1)), log_sigma=0.0, stage="both")
@example(image=np.full((9, 9), np.finfo(np.float64).max), log_sigma=-1.0, stage="both")
@example(image=np.array([[[0.0, 1.54087983e308, 1.54087983e308]]]), log_sigma=0.0, stage="both")  # colour
@example(image=TIES, log_sigma=0.0, stage="hard")
@example(image=TIES, log_sigma=0.0, stage="both")
def test_bm3d_equals_its_reference_loop(image, log_sigma, stage):
    scale = _scale(image, False)
    # BM3D's matching thresholds are on the [0, 1] scale: a float32 image of values near 1e6 needs
    # data_range (without it the second step matches blocks of the first step's estimate against a
    # threshold below the two forms' float32 round-off: 1 x 16 of 1.38e6 differed by 0.3 %)
    far = image.dtype == np.float32 and scale > 1e4
    sigma = min(10.0**log_sigma * scale, 1e300)
    channel_axis = -1 if image.ndim == 3 else None
    kwargs = dict(channel_axis=channel_axis, stage=stage, data_range=scale if far else None)
    got = attempt("bm3d", bm3d, image, sigma, **kwargs)
    if got.error is not None:  # a sigma that underflows to 0 is refused
        assert "sigma" in str(got.error)
        return
    assert got.value.shape == image.shape
    assert got.value.dtype == (np.float32 if image.dtype in (np.float16, np.float32) else np.float64)
    want = bm3d_reference(image, sigma, **kwargs)
    tol = 1e-3 if got.value.dtype == np.float32 else 1e-9
    np.testing.assert_allclose(got.value / scale, want / scale, rtol=0, atol=tol)
    got.correct()


@given(
    name=st.sampled_from(sorted(BAD_IMAGES) + ["colour", "RGBA", "3-D"]),
    fn=st.sampled_from(("bm3d", "bm3d_reference")),
)
def test_bm3d_rejects_invalid_images_clearly(name, fn):
    call = bm3d if fn == "bm3d" else bm3d_reference
    image = {"colour": np.zeros((9, 9, 3)), "RGBA": np.zeros((9, 9, 4)), "3-D": np.zeros((3, 9, 9))}.get(name)
    attempt(fn, call, BAD_IMAGES[name] if image is None else image, 0.1, must_fail=True)


@given(
    dtype=st.sampled_from(DTYPES + (np.float16, np.bool_)),
    which=st.sampled_from(("sigma", "stage", "max_batch_bytes", "channel_axis")),
    value=ADVERSARIAL,
)
@example(dtype=np.float32, which="sigma", value=2.5e18)  # sigma^2 beyond float32
@example(dtype=np.float32, which="sigma", value=1e-30)  # sigma^2 below float32's smallest
def test_bm3d_adversarial_arguments_give_a_result_or_a_clear_error(dtype, which, value):
    image = (np.random.default_rng(0).random((13, 11, 3)) * 100).astype(dtype)
    kwargs = {"sigma": 0.1, "stage": "both", "max_batch_bytes": None, "channel_axis": -1}
    kwargs[which] = value
    got = attempt("bm3d", bm3d, image, kwargs.pop("sigma"), **kwargs)
    if got.error is None:
        assert got.value.shape == image.shape
        got.correct()
