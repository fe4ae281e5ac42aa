"""Classical non-local means (Buades, Coll, Morel, CVPR 2005; IPOL 2011).

The start of nlref's teaching path, and the part people use on real images:

* :func:`nl_means` -- scikit-image's ``denoise_nl_means`` API, NumPy or CuPy,
  2-D/3-D, any number of channels, per-axis patch and search sizes.
* :func:`nl_means_pixelwise` -- the definition, pixel by pixel (the oracle).
* :mod:`nlref.denoise.fast` -- the offset loop (Darbon et al. 2008), one offset
  per step or a batch of offsets per step.
* :func:`nl_means_ipol` -- the IPOL 2011 variant with its parameter table.
* :func:`estimate_sigma` -- Immerkaer's (1996) noise estimate.
"""

from __future__ import annotations

from .core import nl_means
from .pixelwise import nl_means_pixelwise

__all__ = ["nl_means", "nl_means_pixelwise"]

try:  # filled in step by step; keep the package importable meanwhile
    from .ipol import ipol_parameters, nl_means_ipol  # noqa: F401

    __all__ += ["nl_means_ipol", "ipol_parameters"]
except ModuleNotFoundError as exc:  # pragma: no cover
    if exc.name != f"{__name__}.ipol":
        raise
try:
    from .noise import estimate_sigma  # noqa: F401

    __all__ += ["estimate_sigma"]
except ModuleNotFoundError as exc:  # pragma: no cover
    if exc.name != f"{__name__}.noise":
        raise
