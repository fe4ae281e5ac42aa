"""Fuzz: ``nlref.gradcheck`` arguments.

A correct layer (``linear_forward``/``linear_backward``) on random shapes must
pass; a wrong backward must be reported (``GradcheckError``); every malformed
argument -- a non-callable, a forward or backward returning the wrong thing,
non-positive or non-finite tolerances, inputs that are not finite float
arrays, a bad seed -- must give one clear ``ValueError``/``TypeError``.
Outcomes are counted by :mod:`fuzz_harness`.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzz_harness import attempt
from hypothesis import example, given
from hypothesis import strategies as st

from nlref.gradcheck import GradcheckError, gradcheck
from nlref.nn import linear_backward, linear_forward

pytestmark = pytest.mark.fuzz


@given(
    n=st.integers(1, 3),
    c_in=st.integers(1, 3),
    c_out=st.integers(1, 3),
    mode=st.sampled_from(("full", "random")),
    seed=st.integers(0, 99),
)
def test_a_correct_backward_passes_and_a_wrong_one_is_reported(n, c_in, c_out, mode, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, 2))
    params = {"w": rng.standard_normal((c_out, c_in)), "b": rng.standard_normal(c_out)}
    got = attempt("gradcheck", gradcheck, linear_forward, linear_backward, x, params, mode=mode, seed=seed)
    assert got.value.passed and got.value.worst_error < 1e-6
    got.correct()

    def wrong_backward(dout, cache):
        dx, grads = linear_backward(dout, cache)
        return 2 * dx + 1, grads

    with pytest.raises(GradcheckError):
        gradcheck(linear_forward, wrong_backward, x, params, mode=mode, seed=seed)


def _x():
    return np.random.default_rng(0).standard_normal((2, 3, 2))


def _p():
    return {"w": np.random.default_rng(1).standard_normal((2, 3))}


BAD_CALLS = {
    "forward not callable": lambda v: dict(forward=v),
    "backward not callable": lambda v: dict(backward=v),
    "forward returns it": lambda v: dict(forward=lambda x, p: v),
    "backward returns it": lambda v: dict(backward=lambda d, c: v),
    "backward dx": lambda v: dict(backward=lambda d, c: (v, linear_backward(d, c)[1])),
    "backward grads": lambda v: dict(backward=lambda d, c: (linear_backward(d, c)[0], v)),
    "inputs": lambda v: dict(inputs=v),
    "params": lambda v: dict(params=v),
    "eps": lambda v: dict(eps=v),
    "rtol": lambda v: dict(rtol=v),
    "atol": lambda v: dict(atol=v),
    "mode": lambda v: dict(mode=v),
    "n_directions": lambda v: dict(n_directions=v, mode="random"),
    "seed": lambda v: dict(seed=v),
    "raise_on_failure": lambda v: dict(raise_on_failure=v),
}

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**65), 2**65),
    st.floats(),
    st.complex_numbers(),
    st.text(max_size=3),
    st.lists(st.integers(0, 2), max_size=3),
    st.sampled_from(
        (
            np.array([np.nan, 1.0]),
            np.array([np.inf]),
            np.zeros((0, 3)),
            np.ones((2, 3), np.int64),
            np.ones((2, 3), complex),
            (np.ones(2), np.ones(2)),
            {"w": np.full((2, 3), np.nan)},
            {"w": [[1.0]]},
        )
    ),
)


@given(which=st.sampled_from(sorted(BAD_CALLS)), value=VALUES)
@example(which="seed", value=-1)
@example(which="eps", value=float("inf"))
@example(which="n_directions", value=2**62)  # was a loop of 2**62 forwards
@example(which="inputs", value=np.array([np.nan, 1.0]))
@example(which="backward dx", value=np.ones((2, 3, 2), complex))  # was a ComplexWarning
@example(which="mode", value={"w": np.full((2, 3), np.nan)})  # was a multi-line message
def test_adversarial_arguments_give_a_report_or_a_clear_error(which, value):
    call = dict(forward=linear_forward, backward=linear_backward, inputs=_x(), params=_p())
    call.update(BAD_CALLS[which](value))
    got = attempt(
        "gradcheck",
        gradcheck,
        call.pop("forward"),
        call.pop("backward"),
        call.pop("inputs"),
        call.pop("params"),
        raise_on_failure=call.pop("raise_on_failure", False),
        finite_result=False,
        **call,
    )
    if got.error is None:  # a report: either passed, or failed with a reason
        report = got.value
        assert report.passed or any(not e.passed for e in report.entries)
        got.correct()
