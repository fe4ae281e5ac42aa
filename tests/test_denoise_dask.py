"""nl_means_dask: chunk-wise non-local means equals the in-memory call on the whole image.

The oracle is the in-memory ``nl_means`` on the whole array (and, to show the
tiling itself is exact, scikit-image's ``denoise_nl_means`` run through the same
tiling).  Acceptance: max abs difference <= 1e-6 in float32, <= 1e-12 in float64.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nlref.backend import to_numpy
from nlref.denoise import tiled
from nlref.denoise.tiled import nl_means_dask

da = pytest.importorskip("dask.array")

TOL = {np.float32: 1e-6, np.float64: 1e-12}


def _skimage_nl_means():
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means


@pytest.fixture
def nl_means():
    """The oracle: the in-memory ``nl_means`` on the whole image."""
    from nlref.denoise import nl_means

    return nl_means


def assert_exact(chunked, whole, dtype):
    chunked, whole = to_numpy(chunked), to_numpy(whole)
    assert chunked.shape == whole.shape and chunked.dtype == whole.dtype
    err = float(np.abs(chunked.astype(np.float64) - whole).max())
    assert err <= TOL[np.dtype(dtype).type], f"max abs difference {err:.3g} > {TOL[np.dtype(dtype).type]:g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fast_mode", [True, False])
def test_odd_chunks_that_do_not_divide_the_image_match_in_memory(xp, nl_means, rng, dtype, fast_mode):
    image = xp.asarray(rng.random((61, 47)).astype(dtype))
    kw = dict(patch_size=5, patch_distance=4, h=0.12, fast_mode=fast_mode)
    out = nl_means_dask(image, chunks=(17, 13), **kw)
    assert out.numblocks == (4, 4)  # 61 = 17+17+17+10, 47 = 13+13+13+8: edge chunks of every kind
    assert_exact(out.compute(), nl_means(image, **kw), dtype)


def test_tiling_is_exact_for_scikit_image_too(monkeypatch, rng):
    """The chunk plan is exact for any local filter with reflect padding, not only nlref's."""
    denoise_nl_means = _skimage_nl_means()
    monkeypatch.setattr(tiled, "_in_memory_nl_means", lambda: denoise_nl_means)
    image = rng.random((53, 41))
    kw = dict(patch_size=5, patch_distance=4, h=0.1, fast_mode=True)
    assert_exact(
        nl_means_dask(image, chunks=(11, 9), **kw).compute(), denoise_nl_means(image, **kw), np.float64
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunks_smaller_than_the_search_window_are_merged_and_exact(xp, nl_means, rng, dtype):
    image = xp.asarray(rng.random((40, 33)).astype(dtype))
    kw = dict(patch_size=3, patch_distance=6, h=0.1)  # depth 7, search window 13
    out = nl_means_dask(image, chunks=4, **kw)
    assert all(min(c) >= 7 for c in out.chunks)
    assert_exact(out.compute(), nl_means(image, **kw), dtype)


def test_chunks_thinner_than_the_halo_raise_without_rechunk(rng):
    image = rng.random((40, 33)).astype(np.float32)
    with pytest.raises(ValueError, match=r"chunks along axis 0 must be at least 7"):
        nl_means_dask(image, patch_size=3, patch_distance=6, chunks=4, allow_rechunk=False)


def test_axis_shorter_than_the_halo_is_one_chunk(xp, nl_means, rng):
    image = xp.asarray(rng.random((9, 60)).astype(np.float32))
    kw = dict(patch_size=3, patch_distance=6, h=0.1)
    out = nl_means_dask(image, chunks=(4, 20), **kw)
    assert out.numblocks[0] == 1
    assert_exact(out.compute(), nl_means(image, **kw), np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_colour_image_matches_in_memory(xp, nl_means, rng, dtype):
    image = xp.asarray(rng.random((37, 29, 3)).astype(dtype))
    kw = dict(patch_size=3, patch_distance=3, h=0.15, channel_axis=-1)
    out = nl_means_dask(image, chunks=(10, 11), **kw)
    assert out.chunks[2] == (3,)
    assert_exact(out.compute(), nl_means(image, **kw), dtype)


def test_dask_array_chunked_along_channels_is_rechunked(nl_means, rng):
    image = rng.random((3, 30, 26)).astype(np.float32)  # channels first
    kw = dict(patch_size=3, patch_distance=3, h=0.15, channel_axis=0)
    out = nl_means_dask(da.from_array(image, chunks=(1, 11, 9)), **kw)
    assert out.chunks[0] == (3,)
    assert_exact(out.compute(), nl_means(image, **kw), np.float32)


def test_chunks_along_the_channel_axis_are_refused(rng):
    image = rng.random((30, 26, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"channel axis.*channel_axis=2.*received 1"):
        nl_means_dask(image, channel_axis=-1, chunks=(10, 10, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_volume_matches_in_memory(xp, nl_means, rng, dtype):
    image = xp.asarray(rng.random((13, 21, 19)).astype(dtype))
    kw = dict(patch_size=3, patch_distance=2, h=0.2)
    out = nl_means_dask(image, chunks=(5, 8, 7), **kw)
    assert out.numblocks == (3, 3, 3)
    assert_exact(out.compute(), nl_means(image, **kw), dtype)


def test_video_with_per_axis_patch_and_search_matches_in_memory(xp, nl_means, rng):
    video = xp.asarray(rng.random((11, 24, 22)).astype(np.float32))  # (T, H, W)
    kw = dict(patch_size=(1, 3, 3), patch_distance=(1, 3, 2), h=0.2)
    out = nl_means_dask(video, chunks=(4, 9, 8), **kw)
    assert out.numblocks == (3, 3, 3)
    assert_exact(out.compute(), nl_means(video, **kw), np.float32)


def test_integer_image_and_sigma_pass_through(nl_means, rng):
    image = (rng.random((35, 31)) * 255).astype(np.uint8)
    kw = dict(patch_size=5, patch_distance=3, h=0.1, sigma=0.05)
    out = nl_means_dask(image, chunks=12, **kw).compute()
    assert_exact(out, nl_means(image, **kw), np.float64)
    assert np.abs(out - nl_means(image, **{**kw, "sigma": 0.0})).max() > 1e-3  # sigma was used


def test_ipol_weighting_passes_through(xp, nl_means, rng):
    image = xp.asarray(rng.random((40, 38)).astype(np.float32))
    kw = dict(patch_size=3, patch_distance=5, h=0.1, sigma=0.05, weighting="ipol")
    assert_exact(nl_means_dask(image, chunks=(13, 11), **kw).compute(), nl_means(image, **kw), np.float32)


def test_result_is_lazy_and_keeps_the_chunk_array_type(xp, rng):
    image = xp.asarray(rng.random((30, 30)).astype(np.float32))
    out = nl_means_dask(da.from_array(image, chunks=15), patch_size=3, patch_distance=2)
    assert isinstance(out, da.Array) and out.dtype == np.float32
    assert type(out._meta) is type(image)  # CuPy chunks stay CuPy
    assert type(out.blocks[0, 0].compute()) is type(image)


def test_bad_keywords_raise_before_any_chunk_is_computed(rng):
    image = rng.random((30, 30)).astype(np.float32)
    with pytest.raises(ValueError, match="h"):
        nl_means_dask(image, h=-1.0, chunks=10)
    with pytest.raises(ValueError, match="patch_size"):
        nl_means_dask(image, patch_size=4, chunks=10)
    with pytest.raises(TypeError, match="image"):
        nl_means_dask([[1.0, 2.0]])
    with pytest.raises(ValueError, match="chunks"):
        nl_means_dask(image, chunks=(10, 10, 10))


def test_missing_dask_raises_importerror_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"nlref\[dask\]"):
        nl_means_dask(np.zeros((8, 8)))


def test_importing_nlref_denoise_does_not_import_dask():
    code = (
        "import sys, nlref, nlref.denoise, nlref.denoise.tiled, nlref.cli.stream, nlref.cli.denoise; "
        "print('dask' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_distributed_local_cluster_with_two_worker_processes(nl_means, rng):
    distributed = pytest.importorskip("distributed")
    image = rng.random((64, 57)).astype(np.float32)
    kw = dict(patch_size=5, patch_distance=4, h=0.12)
    import dask

    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        out = client.compute(nl_means_dask(image, chunks=(23, 19), **kw)).result()
    assert_exact(out, nl_means(image, **kw), np.float32)
