"""Fuzz: BM3D against its reference loop, its scale equivariance and its argument checks.

``bm3d`` (the vectorised form) is compared with ``bm3d_reference`` (one
reference block at a time) on small grey images of odd shapes (from 1 x 1,
reflect-padded, to 21 x 19), every dtype, adversarial values (huge, tiny,
constant, random bits) and hostile sigma (from 1e-300 to 1e300 times the
image's scale); invalid images and arguments must give one clear
``ValueError``/``TypeError``.  Outcomes are counted by :mod:`fuzz_harness`.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzz_harness import attempt
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nlref.backend import as_float_image
from nlref.denoise import bm3d, bm3d_reference

pytestmark = pytest.mark.fuzz

DTYPES = (np.float32, np.float64, np.float16, np.uint8, np.uint16, np.int16, np.bool_)


@st.composite
def grey_images(draw, dtypes=DTYPES):
    shape = (draw(st.integers(1, 21)), draw(st.integers(1, 19)))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    kind = draw(st.sampled_from(("any", "smooth", "constant")))
    if kind == "any" and dtype.kind == "f":
        finite = st.floats(allow_nan=False, allow_infinity=False, width=8 * dtype.itemsize)
        return draw(hnp.arrays(dtype, shape, elements=finite))
    if kind == "any":
        return draw(hnp.arrays(dtype, shape))
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


def _scale(image: np.ndarray) -> float:
    m = float(np.abs(as_float_image(image).astype(np.float64)).max())
    return m if m > 0 else 1.0


@given(image=grey_images(), log_sigma=st.floats(-300, 300), stage=st.sampled_from(("both", "hard")))
@example(image=np.ones((1, 1)), log_sigma=0.0, stage="both")
@example(image=np.full((9, 9), np.finfo(np.float64).max), log_sigma=-1.0, stage="both")
def test_bm3d_equals_its_reference_loop(image, log_sigma, stage):
    scale = _scale(image)
    sigma = min(10.0**log_sigma * scale, 1e300)
    got = attempt("bm3d", bm3d, image, sigma, stage=stage)
    if got.error is not None:  # a sigma that underflows to 0 is refused
        assert "sigma" in str(got.error)
        return
    assert got.value.shape == image.shape
    assert got.value.dtype == (np.float32 if image.dtype in (np.float16, np.float32) else np.float64)
    want = bm3d_reference(image, sigma, stage=stage)
    tol = 1e-3 if got.value.dtype == np.float32 else 1e-9
    np.testing.assert_allclose(got.value / scale, want / scale, rtol=0, atol=tol)
    got.correct()


BAD_IMAGES = {
    "list": [[0.1, 0.2, 0.3]] * 3,
    "None": None,
    "complex": np.ones((9, 9), complex),
    "object": np.full((9, 9), 0.5, dtype=object),
    "str": np.full((9, 9), "a"),
    "empty": np.zeros((0, 9)),
    "1-D": np.zeros(9),
    "3-D": np.zeros((3, 9, 9)),
    "colour": np.zeros((9, 9, 3)),
    "RGBA": np.zeros((9, 9, 4)),
    "nan": np.where(np.eye(9, dtype=bool), np.nan, 0.5),
    "-inf float32": np.where(np.eye(9, dtype=bool), -np.inf, 0.5).astype(np.float32),
}


@given(name=st.sampled_from(sorted(BAD_IMAGES)), fn=st.sampled_from(("bm3d", "bm3d_reference")))
def test_invalid_images_are_rejected_clearly(name, fn):
    call = bm3d if fn == "bm3d" else bm3d_reference
    attempt(fn, call, BAD_IMAGES[name], 0.1, must_fail=True)


ADVERSARIAL = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.complex_numbers(),
    st.text(max_size=3),
    st.lists(st.integers(-3, 12), max_size=3),
)


@given(
    dtype=st.sampled_from(DTYPES),
    which=st.sampled_from(("sigma", "stage", "max_batch_bytes")),
    value=ADVERSARIAL,
)
@example(dtype=np.float32, which="sigma", value=2.5e18)  # sigma^2 beyond float32
@example(dtype=np.float32, which="sigma", value=1e-30)  # sigma^2 below float32's smallest
def test_adversarial_arguments_give_a_result_or_a_clear_error(dtype, which, value):
    image = (np.random.default_rng(0).random((13, 11)) * 100).astype(dtype)
    kwargs = {"sigma": 0.1, "stage": "both", "max_batch_bytes": None}
    kwargs[which] = value
    got = attempt("bm3d", bm3d, image, kwargs.pop("sigma"), **kwargs)
    if got.error is None:
        assert got.value.shape == image.shape
        got.correct()
