"""The streaming ``nlref denoise`` path: lazy read, chunk-wise exact result, band-wise atomic write.

Oracle: the in-memory ``nl_means`` on the whole image, read back from what the
streaming path wrote (TIFF via tifffile, Zarr via zarr).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import numpy as np
import pytest

from nlref.cli import denoise as cli
from nlref.cli import stream, stream_files
from nlref.denoise import tiled
from nlref.io import from_float

tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr")
pytest.importorskip("dask.array")
import dask  # noqa: E402

KW = dict(patch_size=3, patch_distance=4, h=0.15, sigma=0.0)
OPTIONS = ["--patch-size", "3", "--patch-distance", "4", "--h", "0.15", "--sigma", "0"]


def nl_means(image, **kw):
    """The oracle: the in-memory call on the whole image."""
    from nlref.denoise import nl_means

    return nl_means(image, **{**KW, **kw})


@pytest.fixture(autouse=True)
def small_tiff_tiles(monkeypatch):
    """16-pixel TIFF tiles, so that small test images span several rows of tiles."""
    monkeypatch.setattr(stream_files, "TIFF_TILE", 16)


def make_args(src, dst, *options, defaults=True):
    """``nlref denoise SRC DST OPTIONS`` parsed by the CLI's own parser."""
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(["denoise", str(src), str(dst), *(OPTIONS if defaults else []), *options])


def read_back(path):
    path = str(path)
    if path.endswith(".zarr"):
        return np.asarray(zarr.open_array(path, mode="r")[...])
    return tifffile.imread(path)


def leftovers(folder, keep):
    """Temporary files or folders left beside the outputs."""
    return sorted(p for p in os.listdir(folder) if p not in keep)


@pytest.fixture
def grey_tiff(tmp_path, rng):
    image = rng.random((70, 45)).astype(np.float32)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, image, tile=(16, 16))
    return path, image


def max_diff(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max())


def test_parse_bytes_accepts_decimal_and_binary_units():
    assert stream.parse_bytes("2GB") == 2 * 10**9
    assert stream.parse_bytes("512MiB") == 512 * 2**20
    assert stream.parse_bytes("1e9") == 10**9
    assert stream.parse_bytes("1.5k") == 1500
    for bad in ("abc", "-1GB", "0", "2 GBB"):
        with pytest.raises(argparse.ArgumentTypeError, match="--max-memory"):
            stream.parse_bytes(bad)


def test_parse_chunks_accepts_one_or_per_axis_sizes():
    assert stream.parse_chunks("512") == (512,)
    assert stream.parse_chunks("8,64,64") == (8, 64, 64)
    assert stream.parse_chunks("64x32") == (64, 32)
    for bad in ("0", "a,b", "64,-1", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="--chunks"):
            stream.parse_chunks(bad)


def test_cli_parser_has_chunks_and_max_memory(tmp_path):
    args = make_args("in.tif", "out.tif", "--chunks", "64,32", "--max-memory", "2GB")
    assert args.chunks == (64, 32) and args.max_memory == 2 * 10**9
    with pytest.raises(SystemExit):
        make_args("in.tif", "out.tif", "--max-memory", "lots")


def test_wants_streaming_on_options_zarr_output_or_a_large_input(grey_tiff, tmp_path, monkeypatch):
    src, _ = grey_tiff
    assert not stream.wants_streaming(make_args(src, tmp_path / "out.tif"))
    assert stream.wants_streaming(make_args(src, tmp_path / "out.tif", "--chunks", "32"))
    assert stream.wants_streaming(make_args(src, tmp_path / "out.tif", "--max-memory", "1GB"))
    assert stream.wants_streaming(make_args(src, tmp_path / "out.zarr"))
    monkeypatch.setattr(stream, "_default_budget", lambda: 1000)  # 70x45 float64 x 8 copies > 1000 bytes
    assert stream.wants_streaming(make_args(src, tmp_path / "out.tif"))


def test_tiff_input_is_opened_lazily_tile_by_tile(grey_tiff):
    import contextlib

    import dask.array as da

    src, image = grey_tiff
    with contextlib.ExitStack() as stack:
        x = stream_files.open_lazy(src, da, stack)
        assert isinstance(x, da.Array) and x.chunksize == (16, 16)  # one chunk per TIFF tile
        np.testing.assert_array_equal(x.compute(), image)


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_grey_tiff_streams_to_the_in_memory_result(grey_tiff, tmp_path, capsys, suffix):
    src, image = grey_tiff
    dst = tmp_path / f"out{suffix}"
    assert stream.run_streaming(make_args(src, dst, "--chunks", "23,17")) == 0
    out = read_back(dst)
    assert out.dtype == np.float32 and max_diff(out, nl_means(image)) <= 1e-6
    assert leftovers(tmp_path, {"in.tif", dst.name}) == []
    assert "100%" in capsys.readouterr().err  # progress bar (tqdm for TIFF bands, Dask's for Zarr chunks)


def test_zarr_input_streams_without_options(tmp_path, rng):
    image = rng.random((50, 41)).astype(np.float32)
    src = tmp_path / "in.zarr"
    zarr.open_array(str(src), mode="w", shape=image.shape, dtype=image.dtype, chunks=(16, 16))[...] = image
    args = make_args(src, tmp_path / "out.tif")
    assert stream.wants_streaming(args)
    assert cli.run(args) == 0
    assert max_diff(read_back(tmp_path / "out.tif"), nl_means(image)) <= 1e-6


def test_streamed_tiff_is_tiled(grey_tiff, tmp_path):
    src, _ = grey_tiff
    dst = tmp_path / "out.tiff"
    stream.run_streaming(make_args(src, dst, "--chunks", "40"))
    with tifffile.TiffFile(dst) as tif:
        assert tif.pages[0].is_tiled and tif.pages[0].tilelength == 16


def test_streaming_writes_what_the_in_memory_command_writes(tmp_path, rng):
    """16-bit in, 16-bit out; sigma estimated once (here on the whole, small image) as in memory."""
    image = (rng.random((48, 40)) * 65535).astype(np.uint16)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, image)
    options = ["--patch-size", "3", "--patch-distance", "4"]
    assert cli.run(make_args(src, tmp_path / "memory.tif", *options, defaults=False)) == 0
    assert cli.run(make_args(src, tmp_path / "stream.tif", "--chunks", "17", *options, defaults=False)) == 0
    memory, streamed = read_back(tmp_path / "memory.tif"), read_back(tmp_path / "stream.tif")
    assert streamed.dtype == np.uint16
    np.testing.assert_array_equal(streamed, memory)


def test_colour_png_streams_to_tiff(tmp_path, rng):
    import imageio.v3 as iio

    image = (rng.random((40, 37, 3)) * 255).astype(np.uint8)
    src, dst = tmp_path / "in.png", tmp_path / "out.tif"
    iio.imwrite(src, image)
    stream.run_streaming(make_args(src, dst, "--chunks", "15,14"))  # colour found by --channel-axis auto
    out = read_back(dst)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, from_float(nl_means(image, channel_axis=-1), np.uint8))


def test_volume_streams_to_tiff_pages_and_zarr(tmp_path, rng):
    volume = rng.random((9, 34, 30)).astype(np.float32)
    src = tmp_path / "vol.tif"
    tifffile.imwrite(src, volume)
    want = nl_means(volume, patch_size=(1, 3, 3), patch_distance=(1, 4, 4))
    for name in ("out.tif", "out.zarr"):
        stream.run_streaming(
            make_args(
                src,
                tmp_path / name,
                "--chunks",
                "4,17,13",
                "--patch-size",
                "1,3,3",
                "--patch-distance",
                "1,4,4",
            )
        )
        out = read_back(tmp_path / name)
        assert out.shape == volume.shape and max_diff(out, want) <= 1e-6


def test_max_memory_sizes_the_chunks(grey_tiff, tmp_path):
    src, image = grey_tiff
    plan = functools.partial(stream.plan_chunks, (4096, 4096), None, 7, 11, threads=4, itemsize=4)
    # 512 preferred; a 512-band of a TIFF costs 10 x 512 x 4096 x 4 B = 84 MB,
    # 4 chunks 4 x 12 x 540^2 x 4 B = 56 MB
    assert plan(10**9) == (512, 512) and plan(150 * 10**6) == (512, 512)
    assert plan(130 * 10**6) == (256, 256)
    assert plan(130 * 10**6, band=False) == (512, 512)  # Zarr is written chunk by chunk, without bands
    with pytest.raises(ValueError, match="too little"):
        plan(10**5)


def test_max_memory_streams_in_the_planned_chunks(grey_tiff, tmp_path, monkeypatch, capsys):
    src, image = grey_tiff
    monkeypatch.setattr(stream, "_resident_bytes", lambda: 0)  # the budget is all for the work
    dst = tmp_path / "out.tif"
    with dask.config.set(num_workers=2):
        stream.run_streaming(make_args(src, dst, "--max-memory", "200kB"))
    # 70x45 float32, halo 5, 2 threads: 35-pixel chunks need 257 kB, 17-pixel ones 101 kB
    assert "chunks (17, 17)" in capsys.readouterr().out
    assert max_diff(read_back(dst), nl_means(image)) <= 1e-6


def test_max_memory_below_what_python_uses_is_refused(grey_tiff, tmp_path, monkeypatch):
    src, _ = grey_tiff
    monkeypatch.setattr(stream, "_resident_bytes", lambda: 10**9)
    with pytest.raises(ValueError, match="--max-memory must exceed what this process already uses"):
        stream.run_streaming(make_args(src, tmp_path / "out.tif", "--max-memory", "500MB"))
    assert leftovers(tmp_path, {"in.tif"}) == []


def _refuse_work(monkeypatch):
    def no_work(*a, **k):
        raise AssertionError("nl_means was called")

    monkeypatch.setattr(tiled, "_in_memory_nl_means", lambda: no_work)


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_existing_output_without_overwrite_is_refused_before_any_work(
    grey_tiff, tmp_path, monkeypatch, suffix
):
    src, _ = grey_tiff
    dst = tmp_path / f"old{suffix}"
    dst.mkdir() if suffix == ".zarr" else dst.write_bytes(b"keep me")
    _refuse_work(monkeypatch)
    with pytest.raises(FileExistsError, match="--overwrite"):
        stream.run_streaming(make_args(src, dst, "--chunks", "30"))
    assert suffix == ".zarr" or dst.read_bytes() == b"keep me"


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_overwrite_replaces_an_existing_output(grey_tiff, tmp_path, suffix):
    src, image = grey_tiff
    dst = tmp_path / f"out{suffix}"
    stream.run_streaming(make_args(src, dst, "--chunks", "30"))
    stream.run_streaming(make_args(src, dst, "--chunks", "30", "--overwrite", "--h", "0.3"))
    assert max_diff(read_back(dst), nl_means(image, h=0.3)) <= 1e-6
    assert leftovers(tmp_path, {"in.tif", dst.name}) == []


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_error_midway_leaves_no_partial_output(grey_tiff, tmp_path, monkeypatch, suffix):
    from nlref.denoise import nl_means as in_memory

    src, _ = grey_tiff
    calls = []

    def fails_on_a_later_chunk(block, **kw):
        calls.append(1)
        if len(calls) > 3:  # the probe and a first band succeed
            raise RuntimeError("disk on fire")
        return in_memory(block, **kw)

    monkeypatch.setattr(tiled, "_in_memory_nl_means", lambda: fails_on_a_later_chunk)
    dst = tmp_path / f"out{suffix}"
    with pytest.raises(RuntimeError, match="disk on fire"):
        stream.run_streaming(make_args(src, dst, "--chunks", "24,45"))
    assert len(calls) > 3 and leftovers(tmp_path, {"in.tif"}) == []


def test_bad_requests_fail_before_any_work(grey_tiff, tmp_path, monkeypatch):
    src, _ = grey_tiff
    _refuse_work(monkeypatch)
    with pytest.raises(ValueError, match=r"\.tif, \.tiff or \.zarr"):
        stream.run_streaming(make_args(src, tmp_path / "out.png", "--chunks", "30"))
    with pytest.raises(FileNotFoundError, match="input"):
        stream.run_streaming(make_args(tmp_path / "missing.tif", tmp_path / "out.tif", "--chunks", "30"))
    with pytest.raises(ValueError, match="--add-noise"):
        stream.run_streaming(make_args(src, tmp_path / "out.tif", "--chunks", "30", "--add-noise", "0.1"))
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="bad.tif"):
        stream.run_streaming(make_args(tmp_path / "bad.tif", tmp_path / "out.tif", "--chunks", "30"))
    assert leftovers(tmp_path, {"in.tif", "bad.tif"}) == []


@pytest.mark.gpu
def test_backend_cupy_streams_with_gpu_chunks(grey_tiff, tmp_path):
    src, image = grey_tiff
    dst = tmp_path / "out.tif"
    stream.run_streaming(make_args(src, dst, "--chunks", "23,17", "--backend", "cupy"))
    assert max_diff(read_back(dst), nl_means(image)) <= 1e-5


def test_sigma_is_estimated_once_on_a_central_crop(grey_tiff, tmp_path, monkeypatch):
    from nlref.denoise import estimate_sigma

    src, image = grey_tiff  # 70 x 45
    monkeypatch.setattr(stream, "SIGMA_CROP_PIXELS", 400)  # a 20 x 20 crop
    sigma = float(estimate_sigma(image[25:45, 12:32]))
    dst = tmp_path / "out.tif"
    stream.run_streaming(
        make_args(src, dst, "--chunks", "23", "--patch-size", "3", "--patch-distance", "4", defaults=False)
    )
    # h: the CLI's default, 0.8 sigma
    assert max_diff(read_back(dst), nl_means(image, sigma=sigma, h=0.8 * sigma)) <= 1e-6


@pytest.mark.parametrize("with_zarr", [True, False], ids=["zarr-view", "memmap"])
def test_truncated_tiff_is_refused_before_any_work_naming_the_file(tmp_path, rng, monkeypatch, with_zarr):
    src = tmp_path / "cut.tif"
    tifffile.imwrite(src, rng.random((64, 64)).astype(np.float32))
    os.truncate(src, src.stat().st_size // 2)
    if not with_zarr:
        # tifffile.memmap then: "mmap length is greater than file size"
        monkeypatch.setitem(sys.modules, "zarr", None)
    _refuse_work(monkeypatch)
    with pytest.raises(ValueError, match=r"cut\.tif.*truncated"):
        stream.run_streaming(make_args(src, tmp_path / "out.tif", "--chunks", "32"))
    assert leftovers(tmp_path, {"cut.tif"}) == []


@pytest.mark.parametrize("colours", [1, 3], ids=["grey+alpha", "rgba"])
@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_alpha_streams_copied_as_the_in_memory_command_writes_it(tmp_path, rng, colours, suffix):
    import imageio.v3 as iio

    image = (rng.random((40, 37, colours + 1)) * 255).astype(np.uint8)
    src = tmp_path / "in.png"
    iio.imwrite(src, image)
    assert cli.run(make_args(src, tmp_path / "memory.tif")) == 0
    assert stream.run_streaming(make_args(src, tmp_path / f"stream{suffix}", "--chunks", "15,14")) == 0
    streamed = read_back(tmp_path / f"stream{suffix}")
    np.testing.assert_array_equal(streamed[..., -1], image[..., -1])
    np.testing.assert_array_equal(streamed, read_back(tmp_path / "memory.tif"))
