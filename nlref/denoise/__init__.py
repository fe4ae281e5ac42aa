"""Classical non-local means (Buades, Coll, Morel, CVPR 2005; IPOL 2011).

The start of nlref's teaching path, and the part people use on real images:

* :func:`nl_means` (:mod:`nlref.denoise.api`) -- the front door: scikit-image's
  ``denoise_nl_means`` call, NumPy or CuPy, 2-D/3-D/4-D (volumes, videos,
  volumes over time), any number of channels, per-axis patch and search sizes.
* :func:`nl_means_pixelwise` -- the definition, pixel by pixel (the oracle).
* :mod:`nlref.denoise.fast` -- the offset loop (Darbon et al. 2008), one offset
  per step (CPU); :mod:`nlref.denoise.batched` -- a batch of offsets per step (GPU).
* :func:`nl_means_ipol`, :func:`ipol_parameters` -- the IPOL 2011 variant and
  its parameter table.
* :func:`estimate_sigma` -- Immerkaer's (1996) noise estimate.
* :func:`nl_means_dask` -- the same result chunk by chunk, for images larger
  than memory (needs Dask).
* :func:`bm3d` (:mod:`nlref.denoise.bm3d`) -- BM3D (Dabov et al. 2007) as
  specified by Lebrun (IPOL 2012); :func:`bm3d_reference` its loop form.

Where a new non-local means variant goes:

* a different *weight or kernel* with the same loop (a centre weight, a
  patch kernel, a distance) is a keyword of :func:`nl_means`, validated in
  :mod:`nlref.denoise._common` and checked against :func:`nl_means_pixelwise`
  (which gets the same keyword);
* a different *algorithm or parameter choice* (IPOL's table, a patch-wise
  "block" variant, BM3D-like grouping) is a new public function in its own
  module, built on ``nl_means`` or on the shared preparation;
* a different *way to execute* the same numbers (chunked with Dask, streamed
  from disk, batched for a GPU) is an execution strategy: it must give
  ``nl_means``'s result to float round-off, like :mod:`nlref.denoise.tiled`.

Errors: bad arguments raise ``ValueError``/``TypeError`` naming the argument;
an unsupported number of spatial axes raises
:class:`UnsupportedDimensionError` (a ``ValueError`` and a
``NotImplementedError``, so code written for scikit-image catches it too).
"""

from __future__ import annotations

from ._common import UnsupportedDimensionError
from .api import nl_means
from .bm3d import bm3d, bm3d_reference
from .ipol import IPOL_TABLE, ipol_parameters, nl_means_ipol
from .learned import denoise_learned
from .noise import estimate_sigma
from .pixelwise import nl_means_pixelwise
from .tiled import nl_means_dask  # Dask itself is imported only when it is called

__all__ = [
    "nl_means",
    "nl_means_pixelwise",
    "nl_means_ipol",
    "ipol_parameters",
    "IPOL_TABLE",
    "estimate_sigma",
    "nl_means_dask",
    "UnsupportedDimensionError",
    "denoise_learned",
    "bm3d",
    "bm3d_reference",
]
