"""Non-local means on images larger than memory: the same call, chunk by chunk, on Dask.

Non-local means is *local at a distance*: the output at pixel ``i`` reads only the
pixels within ``patch_distance + patch_size // 2`` of ``i`` (the search window,
widened by half a patch).  So an image can be cut into chunks, each chunk grown
by that many pixels of its neighbours (a halo), denoised in memory with
:func:`nlref.denoise.nl_means`, and trimmed back.  ``dask.array.map_overlap``
does exactly this and runs the chunks on threads, processes or a cluster.

Why the result is *identical* to the in-memory call, edges included:

* inside the image, every pixel a kept output reads is real data from the halo;
* at the edges of the whole image Dask adds nothing (``boundary="none"``), so a
  border chunk starts at the image edge and the reflect padding that
  ``nl_means`` adds inside the chunk is the very padding it adds to the whole
  image.

This module only plans chunks and depths; the arithmetic is ``nl_means``'s own,
so NumPy chunks and CuPy chunks both work.  Dask is an optional dependency
(``pip install 'nlref[dask]'``) imported only when the function is called.
"""

from __future__ import annotations

import functools
from typing import Any

from .._validation import check_array
from ..backend import get_namespace
from ._common import check_geometry
from .api import nl_means

__all__ = ["nl_means_dask"]


def _import_dask_array() -> Any:
    """``dask.array``, or an ImportError that names the extra to install."""
    try:
        import dask.array as da
    except ImportError as exc:
        raise ImportError(
            "nl_means_dask needs Dask, which is not installed; install the extra: pip install 'nlref[dask]'"
        ) from exc
    return da


def _in_memory_nl_means() -> Any:
    """The in-memory function applied to every chunk (a hook the tests can swap)."""
    return nl_means


def _spatial_chunks(chunks: Any, shape: tuple[int, ...], channel_axis: int | None) -> tuple[Any, ...]:
    """Expand the ``chunks`` argument to one entry per axis, the channel axis whole (-1)."""
    ndim = len(shape)
    spatial = [ax for ax in range(ndim) if ax != channel_axis]
    if chunks is None or isinstance(chunks, (int, str)):
        per_axis = {ax: ("auto" if chunks is None else chunks) for ax in spatial}
    else:
        chunks = tuple(chunks)
        if len(chunks) == len(spatial):
            per_axis = dict(zip(spatial, chunks))
        elif len(chunks) == ndim:
            c = chunks[channel_axis] if channel_axis is not None else None
            if channel_axis is not None and c not in (-1, None, shape[channel_axis]):
                raise ValueError(
                    f"chunks must not split the channel axis (channel_axis={channel_axis}, "
                    f"{shape[channel_axis]} channels): expected -1, None or {shape[channel_axis]} "
                    f"for that axis, received {c!r}"
                )
            per_axis = {ax: chunks[ax] for ax in spatial}
        else:
            raise ValueError(
                f"chunks must be an int, 'auto', or a tuple of {len(spatial)} (spatial axes) or {ndim} "
                f"(all axes) entries, received {chunks!r}"
            )
    return tuple(-1 if ax == channel_axis else per_axis[ax] for ax in range(ndim))


def nl_means_dask(
    image: Any,
    patch_size: int | tuple[int, ...] = 7,
    patch_distance: int | tuple[int, ...] = 11,
    h: float = 0.1,
    fast_mode: bool = True,
    sigma: float = 0.0,
    *,
    channel_axis: int | None = None,
    chunks: Any = None,
    allow_rechunk: bool = True,
    **nl_means_kwargs: Any,
) -> Any:
    """Non-local means chunk-wise on Dask, equal to :func:`nlref.denoise.nl_means` on the whole image.

    Each output pixel is the non-local mean (Buades, Coll & Morel, CVPR 2005, eq. 1)

        NL(v)(i) = sum_j w(i, j) v(j),   j within ``patch_distance`` of i,

    whose patches reach ``patch_size // 2`` further, so pixel ``i`` depends only on
    the input within ``depth = patch_distance + patch_size // 2`` of it (per axis).
    The image is cut into chunks, each grown by ``depth`` pixels of its neighbours
    (``dask.array.map_overlap``, ``boundary="none"``), denoised by ``nl_means``
    and trimmed.  At the edges of the whole image nothing is added, so each border
    chunk's own reflect padding equals the whole image's: the result matches the
    in-memory call to float round-off, edges included.

    Parameters
    ----------
    image : dask.array.Array or ndarray (NumPy or CuPy)
        2-D, 3-D (volume, or video ``(T, H, W)``) or 4-D image, grey or multichannel.
        An in-memory array is wrapped with ``dask.array.from_array``.  The
        chunks may be NumPy or CuPy arrays; the output chunks are of the same kind.
    patch_size, patch_distance, h, fast_mode, sigma
        As for :func:`nlref.denoise.nl_means` (per-axis tuples allowed; the
        search window is clipped to the image, so the halo never exceeds it).
    channel_axis : int or None
        Axis of the colour channels.  The channel axis is never split: a Dask
        array chunked along it is rechunked to one chunk there.
    chunks : int, str, tuple or None
        Chunk shape.  An int or ``"auto"`` applies to the spatial axes; a tuple
        has one entry per spatial axis, or one per axis with -1 (or the number
        of channels) for the channel axis.  ``None``: keep a Dask array's chunks,
        ``"auto"`` for an in-memory array.
    allow_rechunk : bool
        A chunk thinner than ``max(depth, patch_size)`` along an axis cannot hold
        its neighbour's halo.  If True (default), such chunks are merged with
        their neighbours (``dask.array.overlap.ensure_minimum_chunksize``); if
        False, a ``ValueError`` is raised instead.
    **nl_means_kwargs
        The other keywords of ``nl_means`` (``preserve_range``, ``weighting``),
        passed unchanged to every chunk.

    Returns
    -------
    dask.array.Array
        Lazy result with the chunks of the (possibly rechunked) input and the
        dtype of ``nl_means``'s output; call ``.compute()`` or store it
        (``.to_zarr``, ``dask.array.store``).

    Raises
    ------
    ImportError
        If Dask is not installed (``pip install 'nlref[dask]'``).
    ValueError, TypeError
        Bad keywords (checked by ``nl_means`` itself on a patch-sized block of
        zeros, before any chunk is computed), chunks splitting the channel axis,
        or chunks too thin with ``allow_rechunk=False``.  NaN/inf pixels are
        found chunk by chunk, when the result is computed.

    Notes
    -----
    Every chunk is computed with the same keywords: nothing is estimated per
    chunk.  To use an estimated noise level, estimate it once (on the whole image
    or a representative crop) and pass it::

        sigma = float(estimate_sigma(crop))
        lazy = nl_means_dask(big, h=0.8 * sigma, sigma=sigma, chunks=1024)

    Each chunk costs ``(chunk + 2 depth) ** ndim`` pixels of work and of
    ``nl_means`` memory, so chunks much larger than ``depth`` waste little on halos.

    References
    ----------
    A. Buades, B. Coll, J.-M. Morel, "A non-local algorithm for image denoising",
    CVPR 2005.  Dask ``map_overlap``: https://docs.dask.org/en/stable/array-overlap.html

    Examples
    --------
    Threads on one machine (Dask's default scheduler):

    >>> import numpy as np
    >>> from nlref.denoise import nl_means_dask
    >>> rng = np.random.default_rng(0)
    >>> image = rng.random((1000, 1000), dtype=np.float32)
    >>> out = nl_means_dask(image, patch_size=5, patch_distance=6, h=0.1, chunks=256).compute()

    The same call on several worker processes with ``dask.distributed``.  Unset
    ``MALLOC_TRIM_THRESHOLD_``, which distributed sets for its workers: with it,
    glibc returns every large temporary of ``nl_means`` to the system and maps
    it afresh, which made the workers about 4x slower in our measurements:

    >>> import dask
    >>> from dask.distributed import Client, LocalCluster
    >>> with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
    ...     with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster, Client(cluster):
    ...         out = nl_means_dask(image, patch_size=5, patch_distance=6, h=0.1, chunks=256).compute()
    """
    da = _import_dask_array()
    if not isinstance(image, da.Array):
        check_array(image, "image")
    if not isinstance(allow_rechunk, bool):
        raise TypeError(f"allow_rechunk must be True or False, received {allow_rechunk!r}")
    geometry = check_geometry(image, patch_size, patch_distance, channel_axis)
    channel_axis = geometry.channel_axis
    keywords = dict(
        patch_size=patch_size,
        patch_distance=patch_distance,
        h=h,
        fast_mode=fast_mode,
        sigma=sigma,
        channel_axis=channel_axis,
        **nl_means_kwargs,
    )
    denoise_chunk = functools.partial(_in_memory_nl_means(), **keywords)

    # Run nl_means once on a patch-sized block of zeros (of the chunks' array
    # type): it checks every keyword exactly as the in-memory call would, before
    # any chunk is computed, and tells us the output dtype.
    xp = get_namespace(da.utils.meta_from_array(image))
    spatial = [ax for ax in range(image.ndim) if ax != channel_axis]
    s = dict(zip(spatial, geometry.patch_size))
    probe_shape = [n if ax == channel_axis else min(n, s[ax]) for ax, n in enumerate(image.shape)]
    out_dtype = denoise_chunk(xp.zeros(probe_shape, dtype=image.dtype)).dtype

    if isinstance(image, da.Array):
        x = image if chunks is None else image.rechunk(_spatial_chunks(chunks, image.shape, channel_axis))
    else:
        x = da.from_array(image, chunks=_spatial_chunks(chunks, image.shape, channel_axis))
    if channel_axis is not None and len(x.chunks[channel_axis]) > 1:
        x = x.rechunk({channel_axis: -1})
    x, depth = _halo(da, x, geometry, allow_rechunk)
    return da.map_overlap(
        denoise_chunk,
        x,
        depth=depth,
        boundary="none",
        trim=True,
        allow_rechunk=False,
        dtype=out_dtype,
        meta=da.utils.meta_from_array(x, ndim=x.ndim, dtype=out_dtype),
    )


def _halo(da: Any, x: Any, geometry: Any, allow_rechunk: bool) -> tuple[Any, dict[int, int]]:
    """Depth of the halo per axis (``patch_distance + patch_size // 2``), chunks merged to hold it.

    ``patch_distance`` is already clipped to the image (:func:`check_geometry`),
    so the halo never exceeds the image.
    """
    spatial = [ax for ax in range(x.ndim) if ax != geometry.channel_axis]
    depth = {ax: 0 for ax in range(x.ndim)}
    for ax, p, d in zip(spatial, geometry.patch_size, geometry.patch_distance):
        depth[ax] = d + p // 2
        # a chunk must hold its neighbour's halo and at least one whole patch
        need = min(max(depth[ax], p), x.shape[ax])
        if min(x.chunks[ax]) < need:
            if not allow_rechunk:
                raise ValueError(
                    f"chunks along axis {ax} must be at least {need} pixels "
                    f"(patch_distance + patch_size // 2 = {depth[ax]}, patch_size = {p}) "
                    f"with allow_rechunk=False, received {x.chunks[ax]}"
                )
            x = x.rechunk({ax: da.overlap.ensure_minimum_chunksize(need, x.chunks[ax])})
        if len(x.chunks[ax]) == 1:
            depth[ax] = 0  # one chunk spans the axis: nothing to borrow
    return x, depth
