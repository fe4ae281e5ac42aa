"""nlref: non-local methods, from non-local means to non-local neural networks.

An educational, NumPy-first reference implementation that runs unchanged on
NumPy (CPU) or CuPy (GPU):

* :mod:`nlref.denoise` -- classical non-local means (Buades, Coll, Morel,
  CVPR 2005; IPOL 2011), pixel-wise reference and fast integral-image form.
* :mod:`nlref.nn` -- hand-written forward/backward layers, the non-local block
  of Wang, Girshick, Gupta, He (CVPR 2018), and C2D / I3D video networks.
* :mod:`nlref.gradcheck` -- finite-difference gradient checks for any layer.
* :mod:`nlref.backend` -- the only place that knows NumPy from CuPy.

Subpackages are imported on first attribute access so that ``import nlref``
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {"backend", "denoise", "nn", "metrics", "data", "viz", "cli", "gradcheck"}
# Public functions re-exported lazily: name -> module that defines it.
_LAZY = {  # NumPy too is imported on first use: the console script handles SIGTERM before it (nlref._entry)
    "get_namespace": "nlref.backend",
    "to_numpy": "nlref.backend",
    "nl_means": "nlref.denoise",
    "nl_means_pixelwise": "nlref.denoise",
    "nl_means_ipol": "nlref.denoise",
    "estimate_sigma": "nlref.denoise",
    "nl_means_dask": "nlref.denoise",
    "attention_map": "nlref.viz",
    "psnr": "nlref.metrics",
    "ssim": "nlref.metrics",
}

__all__ = ["__version__", *sorted(_SUBMODULES), *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"nlref.{name}")
    raise AttributeError(f"module 'nlref' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
