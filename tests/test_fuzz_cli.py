"""Fuzz: ``nlref denoise`` with bad files and options exits 2 or 1 with one line on stderr.

``nlref.cli.main`` is called in-process with inputs that are missing, folders,
empty, random bytes, truncated images, of unknown suffix or unsupported dtype,
outputs in missing folders, that are folders, that exist, whose format cannot
hold the image, and with option values that are out of range.  Each must end
in exit status 2 (a request that cannot be done, found before any work) or 1
(a failure during it) with exactly one line on stderr (``nlref: error: ...``),
or, for argparse's own refusals, ``SystemExit(2)`` with its usage message; a
valid request must write a readable image of the input's shape and dtype.
Outcomes are counted by :mod:`fuzz_harness` (API ``cli denoise``).
"""

from __future__ import annotations

import contextlib
import io
import itertools

import fuzz_harness
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from nlref.cli import main
from nlref.io import read_image, write_image

pytestmark = pytest.mark.fuzz

API = "cli denoise"
_counter = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_cli")
    rng = np.random.default_rng(0)
    write_image(d / "grey8.png", (rng.random((12, 12)) * 255).astype(np.uint8))
    write_image(d / "rgb16.tif", (rng.random((12, 12, 3)) * 65535).astype(np.uint16))
    write_image(d / "float.tif", rng.random((12, 12)).astype(np.float32))
    write_image(d / "rgba8.png", (rng.random((12, 12, 4)) * 255).astype(np.uint8))
    import tifffile

    tifffile.imwrite(d / "int16.tif", (rng.random((12, 12)) * 1000).astype(np.int16))
    (d / "empty.png").write_bytes(b"")
    (d / "noise.png").write_bytes(rng.bytes(300))
    (d / "noise.tif").write_bytes(rng.bytes(300))
    data = (d / "rgb16.tif").read_bytes()
    (d / "truncated.tif").write_bytes(data[: len(data) // 2])
    (d / "text.txt").write_text("not an image")
    (d / "sub").mkdir()
    (d / "exists.png").write_bytes(b"x")
    return d


INPUTS = (
    "grey8.png",
    "rgb16.tif",
    "float.tif",
    "rgba8.png",
    "int16.tif",
    "empty.png",
    "noise.png",
    "noise.tif",
    "truncated.tif",
    "text.txt",
    "sub",
    "missing.png",
    "",
)
OUTPUTS = (
    "out.png",
    "out.tif",
    "out.jpg",
    "out.bmp",
    "out.xyz",
    "out",
    "sub",
    "missing/out.png",
    "exists.png",
    "grey8.png/out.png",
)
OPTIONS = st.lists(
    st.sampled_from(
        (
            ["--sigma", "nan"],
            ["--sigma", "-1"],
            ["--sigma", "0.05"],
            ["--sigma", "inf"],
            ["--sigma", "x"],
            ["--h", "0"],
            ["--h", "1e400"],
            ["--h", "0.05"],
            ["--patch-size", "4"],
            ["--patch-size", "3"],
            ["--patch-size", "99"],
            ["--patch-size", "1,3"],
            ["--patch-distance", "-1"],
            ["--patch-distance", "2"],
            ["--patch-distance", "1000000000"],
            ["--channel-axis", "7"],
            ["--channel-axis", "none"],
            ["--channel-axis", "-1"],
            ["--add-noise", "-0.1"],
            ["--add-noise", "0.05"],
            ["--preset", "ipol"],
            ["--slow"],
            ["--overwrite"],
            ["--chunks", "0"],
            ["--chunks", "6"],
            ["--max-memory", "1MB"],
            ["--max-memory", "1e999"],
            ["--max-memory", "0"],
            ["--chunks", "99999999999999999999999"],
            ["--sigma", "1e999"],
            ["--patch-size", "1e3"],
            ["--patch-distance", "99999999999999999999999"],
            ["--max-memory", "-5"],
            ["--max-memory", "1x"],
        )
    ),
    max_size=3,
)


def _run(argv, api=API):
    """``(status, stderr)`` of ``nlref`` with ``argv``, counted by the harness under ``api``."""
    err = io.StringIO()

    def call():
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                return main(argv)
            except SystemExit as exc:  # argparse's refusals
                return ("argparse", exc.code)

    got = fuzz_harness.attempt(api, call, finite_result=False)
    return got, err.getvalue()


@given(inp=st.sampled_from(INPUTS), out=st.sampled_from(OUTPUTS), options=OPTIONS)
@example(inp="grey8.png", out="out.png", options=[["--max-memory", "1e999"]])  # was an OverflowError
@example(inp="grey8.png", out="out.png", options=[])
@example(inp="rgb16.tif", out="out.jpg", options=[])
@example(inp="truncated.tif", out="out.tif", options=[["--chunks", "6"]])
def test_every_request_ends_in_a_status_and_one_line(folder, inp, out, options):
    _check_request(folder, inp, out, ["--patch-distance", "2"] + [a for option in options for a in option])


@given(inp=st.sampled_from(INPUTS), out=st.sampled_from(OUTPUTS), options=OPTIONS)
@example(inp="rgba8.png", out="out.png", options=[])
@example(inp="noise.png", out="out.png", options=[["--sigma", "0.05"]])
def test_every_bm3d_request_ends_in_a_status_and_one_line(folder, inp, out, options):
    _check_request(folder, inp, out, ["--method", "bm3d"] + [a for option in options for a in option])


def _check_request(folder, inp, out, extra, api=API):
    """Run ``nlref denoise`` on ``inp`` -> ``out`` with ``extra`` options: a result or one error line."""
    out_path = (
        folder / f"run{next(_counter)}" / out
        if out not in ("sub", "exists.png", "grey8.png/out.png")
        else folder / out
    )
    if out not in ("sub", "exists.png", "grey8.png/out.png", "missing/out.png"):
        out_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        "denoise",
        str(folder / inp) if inp else "",
        str(out_path),
        "--no-progress",
        *extra,
    ]
    got, err = _run(argv, api)
    status = got.value
    if isinstance(status, tuple):  # argparse: usage and one error line, status 2
        assert status[1] == 2 and err.strip().splitlines()[-1].startswith("nlref denoise: error:")
        got.clear_error()
    elif status == 0:
        written = read_image(out_path)
        assert written.dtype.kind != "f" or np.isfinite(written).all()  # never a NaN image with status 0
        assert written.shape == read_image(folder / inp).shape
        assert written.dtype == read_image(folder / inp).dtype
        got.correct()
    else:
        lines = err.strip().splitlines()
        assert status in (1, 2), status
        assert len(lines) == 1 and lines[0].startswith("nlref: error: "), err
        got.clear_error()
