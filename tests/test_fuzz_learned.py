"""Fuzz: the learned half (issue 28 item 8) -- denoise_learned, the weights reader, the learned CLI.

* ``denoise_learned``: odd images (empty, 1 pixel, thin, huge or negative values, NaN,
  integers, bools, 3-D) and odd tiles, on a tiny network; a result must equal the
  whole-image forward (the tiling is exact) and be finite, anything else a clear error.
* ``load_weights``: every file of ``tests/hostile_files.py`` plus random byte flips and
  truncations of a valid file: a clear one-line error naming the file, or the same arrays.
* ``nlref denoise --method learned``: the CLI fuzz's inputs and options
  (``tests/test_fuzz_cli.py``) plus float TIFFs near 1e20 and with NaN: a finite image
  with status 0, or one error line with status 1 or 2.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tifffile
from fuzz_harness import attempt
from hostile_files import hostile_files, valid_file
from hypothesis import example, given
from hypothesis import strategies as st
from test_fuzz_cli import INPUTS, OPTIONS, OUTPUTS, _check_request
from test_fuzz_cli import folder as cli_folder  # noqa: F401  (the CLI fuzz's input files)

from nlref.denoise.learned import denoise_learned, load_weights
from nlref.nn.denoiser import denoiser_forward

pytestmark = pytest.mark.fuzz
_counter = itertools.count()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return valid_file(tmp_path_factory.mktemp("fuzz_learned") / "tiny.npz")


@pytest.fixture(scope="module")
def net(weights):
    return load_weights(weights)


VALID = ["unit", "noisy", "uint8", "uint16", "bool"]
VALUES = st.sampled_from(VALID * 3 + ["1e19", "-1", "1e300", "nan", "int16"])


def _image(shape, values, seed):
    rng = np.random.default_rng(seed)
    u = rng.random(shape)
    return {
        "unit": u,
        "noisy": (u + rng.normal(0, 0.2, shape)).astype(np.float32),
        "1e19": u * 1e19,
        "-1": u - 1.0,
        "1e300": np.full(shape, 1e300),
        "nan": np.where(u > 0.9, np.nan, u),
        "uint8": (u * 255).astype(np.uint8),
        "uint16": (u * 65535).astype(np.uint16),
        "bool": u > 0.5,
        "int16": (u * 1000 - 500).astype(np.int16),
    }[values]


@given(
    shape=st.tuples(st.integers(0, 40), st.integers(0, 40))
    | st.tuples(st.integers(1, 40), st.integers(1, 40))
    | st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 3)),
    values=VALUES,
    tile=st.sampled_from([256] * 6 + [28, 33, 41, 27, 0, -1, 2.5, None, True, 10**12]),
    seed=st.integers(0, 99),
)
@example(shape=(48, 48), values="1e19", tile=256, seed=0)  # was all NaN
@example(shape=(0, 5), values="unit", tile=256, seed=0)  # was "kernel larger than the padded input"
def test_denoise_learned_gives_the_whole_image_forward_or_a_clear_error(net, shape, values, tile, seed):
    image = _image(shape, values, seed)
    got = attempt("denoise_learned", denoise_learned, image, net, tile=tile)
    if got.error is not None:
        return
    y = image.astype(np.float64) if image.dtype.kind == "f" else None
    if y is None:  # integers are scaled like img_as_float: compare on the float the function used
        from nlref.backend import as_float_image

        y = as_float_image(image)
    whole, _, _ = denoiser_forward(
        y.astype(np.float32)[None, None], net["params"], net["state"], net["model"], train=False
    )
    np.testing.assert_allclose(got.value, y - whole[0, 0], rtol=1e-4, atol=1e-4)
    got.correct()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return hostile_files(tmp_path_factory.mktemp("fuzz_hostile"))


def _read(path):
    return attempt("load_weights", load_weights, path, allowed=(ValueError, TypeError, FileNotFoundError))


def test_every_hostile_file_is_refused_in_one_line_naming_it(hostile):
    for name, (path, expected) in hostile.items():
        got = _read(path)
        assert got.error is not None and expected in str(got.error) and str(path) in str(got.error), name


@given(
    damage=st.sampled_from(["flip", "truncate", "zero run"]),
    where=st.floats(0, 1, exclude_max=True),
    seed=st.integers(0, 2**16),
)
@example(damage="flip", where=0.9646195567153789, seed=0)  # a directory flag bit: "encrypted" RuntimeError
def test_a_damaged_weights_file_is_refused_or_reads_the_same(weights, tmp_path_factory, damage, where, seed):
    data = bytearray(weights.read_bytes())
    i = int(where * len(data))
    if damage == "flip":
        data[i] ^= 1 << (seed % 8)
    elif damage == "zero run":
        data[i : i + 1 + seed % 64] = bytes(len(data[i : i + 1 + seed % 64]))
    else:
        data = data[:i]
    path = tmp_path_factory.mktemp("damaged") / "w.npz"
    path.write_bytes(bytes(data))
    got = _read(path)
    if got.error is not None:
        assert str(path) in str(got.error)
        return
    good = load_weights(weights)
    for group in ("params", "state"):
        for k, v in good[group].items():  # a flip in bytes nobody reads changes nothing
            np.testing.assert_array_equal(got.value[group][k], v)
    got.correct()


@pytest.fixture(scope="module")
def learned_folder(cli_folder, weights):  # noqa: F811
    rng = np.random.default_rng(1)
    tifffile.imwrite(cli_folder / "big.tif", rng.random((20, 20)).astype(np.float32) * np.float32(1e20))
    nan = np.where(rng.random((20, 20)) > 0.9, np.nan, 0.5).astype(np.float32)
    tifffile.imwrite(cli_folder / "nan.tif", nan)
    (cli_folder / "tiny.npz").write_bytes(weights.read_bytes())
    return cli_folder


@given(
    inp=st.sampled_from(("grey8.png", "float.tif") * 4 + (*INPUTS, "big.tif", "nan.tif")),
    out=st.sampled_from(("out.png", "out.tif") * 4 + OUTPUTS),
    options=st.just([]) | OPTIONS,
    shipped=st.booleans(),
)
@example(inp="big.tif", out="out.tif", options=[], shipped=True)  # was a NaN TIFF with status 0
@example(inp="grey8.png", out="out.png", options=[], shipped=True)
def test_every_learned_request_ends_in_a_status_and_one_line(learned_folder, inp, out, options, shipped):
    extra = ["--method", "learned"] + ([] if shipped else ["--weights", str(learned_folder / "tiny.npz")])
    extra += [a for option in options for a in option]
    _check_request(learned_folder, inp, out, extra, api="cli denoise --method learned")
