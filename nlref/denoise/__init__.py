"""Classical non-local means (Buades, Coll, Morel, CVPR 2005; IPOL 2011).

The start of nlref's teaching path, and the part people use on real images:

* :func:`nl_means` -- scikit-image's ``denoise_nl_means`` API, NumPy or CuPy,
  2-D/3-D (volumes, videos), any number of channels, per-axis patch and
  search sizes.
* :func:`nl_means_pixelwise` -- the definition, pixel by pixel (the oracle).
* :mod:`nlref.denoise.fast` -- the offset loop (Darbon et al. 2008), one offset
  per step (CPU) or a batch of offsets per step (GPU).
* :func:`nl_means_ipol`, :func:`ipol_parameters` -- the IPOL 2011 variant and
  its parameter table.
* :func:`estimate_sigma` -- Immerkaer's (1996) noise estimate.
* :func:`nl_means_dask` -- the same result chunk by chunk, for images larger
  than memory (needs Dask).
"""

from __future__ import annotations

from .core import nl_means
from .ipol import IPOL_TABLE, ipol_parameters, nl_means_ipol
from .noise import estimate_sigma
from .pixelwise import nl_means_pixelwise

__all__ = ["nl_means", "nl_means_pixelwise", "nl_means_ipol", "ipol_parameters", "IPOL_TABLE", "estimate_sigma"]

from .tiled import nl_means_dask  # Dask itself is imported only when it is called

__all__ += ["nl_means_dask"]
