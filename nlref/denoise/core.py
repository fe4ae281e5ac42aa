"""Former name of :mod:`nlref.denoise.api`, kept only for ``nlref/denoise/cli.py``.

Delete this file once the command line imports ``nlref.denoise.nl_means``
(it moves to ``nlref/cli/``).
"""

from __future__ import annotations

from .api import nl_means

__all__ = ["nl_means"]
