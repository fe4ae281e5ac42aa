"""Fuzz: PSNR and SSIM against scikit-image, and their refusals.

On valid input (real, finite, non-empty, same shape) both must give
scikit-image's number wherever scikit-image itself computes it without
over- or underflow; everywhere else they must give a finite number (PSNR may
be ``inf`` for identical images, as documented) or one clear error.
Outcomes are counted by :mod:`fuzz_harness`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from fuzz_harness import attempt
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from nlref.metrics import psnr, ssim

pytestmark = pytest.mark.fuzz

DTYPES = (np.float32, np.float64, np.uint8, np.uint16, np.int16, np.bool_)


def _elements(dtype: np.dtype, bounded: bool) -> st.SearchStrategy:
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind == "f":
        if bounded:
            return st.floats(-1, 1, width=8 * dtype.itemsize)
        return st.floats(allow_nan=False, allow_infinity=False, width=8 * dtype.itemsize)
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


@st.composite
def pairs(draw, min_side: int = 1):
    """Two images of one shape and dtype (floats in [-1, 1] half of the time)."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(min_side, 9), min_size=2, max_size=3)))
    bounded = draw(st.booleans())
    a = draw(hnp.arrays(dtype, shape, elements=_elements(dtype, bounded)))
    if draw(st.booleans()):
        b = a.copy()
        b.flat[draw(st.integers(0, a.size - 1))] = draw(_elements(dtype, bounded))
    else:
        b = draw(hnp.arrays(dtype, shape, elements=_elements(dtype, bounded)))
    return a, b


def _skimage(fn, *args, **kwargs):
    """scikit-image's value, or None where it warns (overflow) or fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            value = fn(*args, **kwargs)
        except Exception:
            return None
    return float(value)


@given(data=pairs(), explicit=st.sampled_from((None, 1.0, 255.0, 1e-300, 1e300)))
@example(data=(np.array([[1e300]]), np.array([[-1e300]])), explicit=1.0)  # (a - b)^2 overflows
@example(data=(np.array([[4.5e15, 2.3e-308]]), np.array([[4.5e15, 0.0]])), explicit=1.0)
@example(data=(np.zeros((2, 2)), np.full((2, 2), 1e-200)), explicit=1e300)  # MSE underflows
@example(data=(np.zeros((1, 1), np.float32), np.full((1, 1), 3.4e-22, np.float32)), explicit=None)
def test_psnr_matches_scikit_image(data, explicit):
    a, b = data
    got = attempt("psnr", psnr, a, b, data_range=explicit, finite_result=False)
    if got.error is not None:
        return
    assert not math.isnan(got.value)
    if np.array_equal(a, b):
        assert got.value == math.inf
    else:
        assert math.isfinite(got.value)
        # scikit-image works in float32 for float32 images (squares of 1e-22 are subnormal there),
        # nlref always in float64: the oracle gets float64 copies (same default data_range)
        wide = (a.astype(np.float64), b.astype(np.float64)) if a.dtype == np.float32 else (a, b)
        want = _skimage(peak_signal_noise_ratio, *wide, data_range=explicit)
        if want is not None and math.isfinite(want):
            assert got.value == pytest.approx(want, rel=1e-9, abs=1e-9)
    got.correct()


@given(data=pairs(min_side=7), explicit=st.sampled_from((None, 1.0, 255.0, 1e-300, 1e300)))
@example(data=(np.zeros((8, 8)), np.eye(8)), explicit=1e300)  # (K L)^2 overflows in scikit-image
@example(data=(np.eye(7) * 3e78, np.eye(7) * 3e78), explicit=1.0)  # a product of two variances overflows
def test_ssim_matches_scikit_image(data, explicit):
    a, b = data
    got = attempt("ssim", ssim, a, b, data_range=explicit)
    if got.error is not None:
        return
    assert -1.0 - 1e-9 <= got.value <= 1.0 + 1e-9
    kwargs = {"data_range": explicit if explicit is not None else got_default(a)}
    want = _skimage(structural_similarity, a.astype(np.float64), b.astype(np.float64), **kwargs)
    if want is not None and math.isfinite(want):
        assert got.value == pytest.approx(want, rel=1e-6, abs=1e-6)
    got.correct()


def got_default(a: np.ndarray) -> float:
    """SSIM's default data range (scikit-image's for integers, 1 or 2 for floats)."""
    if a.dtype.kind in "ui":
        return float(np.iinfo(a.dtype).max) - float(np.iinfo(a.dtype).min)
    return 1.0 if a.dtype.kind == "b" or a.min() >= 0 else 2.0


BAD = {
    "list": [[0.1, 0.2]],
    "None": None,
    "complex": np.ones((8, 8), complex),
    "object": np.full((8, 8), 0.5, dtype=object),
    "str": np.full((8, 8), "a"),
    "empty": np.zeros((0, 8)),
    "nan": np.where(np.eye(8, dtype=bool), np.nan, 0.5),
    "inf": np.where(np.eye(8, dtype=bool), np.inf, 0.5),
    "other shape": np.zeros((8, 7)),
}


@given(
    name=st.sampled_from(sorted(BAD)),
    which=st.sampled_from(("reference", "image")),
    fn=st.sampled_from(("psnr", "ssim")),
)
def test_invalid_images_are_rejected_clearly(name, which, fn):
    good = np.full((8, 8), 0.5)
    args = (BAD[name], good) if which == "reference" else (good, BAD[name])
    attempt(fn, {"psnr": psnr, "ssim": ssim}[fn], *args, must_fail=True)


@given(
    fn=st.sampled_from(("psnr", "ssim")),
    which=st.sampled_from(("data_range", "channel_axis", "win_size")),
    value=st.one_of(
        st.none(), st.booleans(), st.integers(-20, 20), st.floats(), st.complex_numbers(), st.text(max_size=2)
    ),
    shape=st.sampled_from(((8, 8), (8, 8, 3), (3, 3), (8, 2))),
)
@example(fn="ssim", which="win_size", value=None, shape=(3, 3))  # scikit-image's own error before
def test_adversarial_arguments_give_a_result_or_a_clear_error(fn, which, value, shape):
    if fn == "psnr" and which != "data_range":
        return
    rng = np.random.default_rng(1)
    a, b = rng.random(shape), rng.random(shape)
    got = attempt(fn, {"psnr": psnr, "ssim": ssim}[fn], a, b, **{which: value})
    if got.error is None:
        assert math.isfinite(got.value)
        got.correct()


@given(
    dtypes=st.tuples(st.sampled_from(DTYPES), st.sampled_from(DTYPES)).filter(lambda d: d[0] != d[1]),
    seed=st.integers(0, 99),
)
def test_mixed_dtypes_match_scikit_image(dtypes, seed):
    rng = np.random.default_rng(seed)
    a, b = (_unit_image(rng, np.dtype(d)) for d in dtypes)
    got = attempt("psnr", psnr, a, b, finite_result=False)
    if got.error is not None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-image warns about the mismatch, then uses a's range
        want = peak_signal_noise_ratio(a, b)
    if math.isfinite(want):
        assert got.value == pytest.approx(want, rel=1e-5)
    got.correct()


def _unit_image(rng, dtype: np.dtype) -> np.ndarray:
    """A random 8 x 8 image in the dtype's natural range ([0, 1] for floats)."""
    if dtype.kind == "b":
        return rng.random((8, 8)) < 0.5
    if dtype.kind == "f":
        return rng.random((8, 8)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), (8, 8)).astype(dtype)
