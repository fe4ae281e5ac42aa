"""BM3D (Dabov et al., TIP 2007): the step from non-local means to collaborative filtering of groups.

NLM averages single pixels with weights from patch similarity; BM3D stacks the
similar *blocks themselves* into a 3-D group and filters the group jointly.
Files, in reading order:

* :mod:`.profile` -- the parameters by noise level (Lebrun, IPOL 2012);
* :mod:`.transforms` -- Bior1.5, DCT, Walsh-Hadamard and Kaiser as matrices;
* :mod:`.filtering` -- the collaborative filter of a batch of groups;
* :mod:`.colour` -- CBM3D's opponent colour space (groups found on the luminance);
* :mod:`.reference` -- the algorithm one reference block at a time (read it first);
* :mod:`.matching`, :mod:`.vectorised` -- the same, a band of reference blocks at a time;
* :mod:`.api` -- :func:`bm3d`, the front door.
"""

from __future__ import annotations

from .api import bm3d
from .profile import StepParams, bm3d_profile
from .reference import bm3d_reference

__all__ = ["bm3d", "bm3d_reference", "bm3d_profile", "StepParams"]
