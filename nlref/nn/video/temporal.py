"""Time in the video models: inflating 2-D kernels (I3D) and the temporal receptive field.

Two questions of Wang et al. (CVPR 2018, Sec. 4.1) about time: how an I3D
network starts from a C2D one (each 2-D kernel repeated over the frames of
its 3-D kernel and divided by their number, Carreira & Zisserman, CVPR 2017),
and how many frames one unit of a network sees -- the number that decides
whether the marks of the synthetic task (:mod:`nlref.data.synthetic_video`)
ever meet inside a convolution, or only in a non-local block.
"""

from __future__ import annotations

from typing import Any

from ...backend import get_namespace
from .layers import lookup_layer

__all__ = ["inflate_2d_to_3d", "temporal_receptive_field"]


def inflate_2d_to_3d(params2d: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Inflate 2-D kernels to the 3-D shapes of ``target`` (Carreira & Zisserman 2017; Wang et al. Sec. 4.1).

    A kernel ``w`` of shape ``(C_out, C_in, k, k)`` or ``(C_out, C_in, 1, k, k)``
    becomes ``w3[:, :, t] = w / T`` for each of the ``T`` frames of the target
    kernel: the sum over time of the inflated kernel is the 2-D one, so on a
    clip whose frames are all equal the 3-D network computes the 2-D network's
    features (exactly, with ``temporal_padding="replicate"``).  Other arrays
    (BN, fc, non-local 1x1x1 convs) are copied.

    ``params2d``: parameters of a C2D network (or 2-D kernels of an image
    ResNet with the same names); ``target``: parameters (or just arrays of the
    right shapes) of the I3D network, e.g. from :func:`i3d` with the same depth,
    width and non-local blocks.  Returns a dict with the keys and shapes of
    ``target``, on the backend of ``params2d``.
    """
    missing = sorted(set(target) - set(params2d))
    extra = sorted(set(params2d) - set(target))
    if missing or extra:
        raise ValueError(
            f"params2d and target must have the same keys; missing in params2d: {missing[:3]}, "
            f"not in target: {extra[:3]}"
        )
    out = {}
    for key, ref in target.items():
        w = params2d[key]
        shape = tuple(ref.shape)
        if w.ndim == len(shape) - 1:  # a genuinely 2-D kernel: add the time axis
            w = w[:, :, None]
        if tuple(w.shape) == shape:
            out[key] = w.copy()
        elif w.ndim == 5 and w.shape[2] == 1 and (w.shape[:2], w.shape[3:]) == (shape[:2], shape[3:]):
            xp = get_namespace(w)
            out[key] = xp.repeat(w, shape[2], axis=2) / w.dtype.type(shape[2])
        else:
            raise ValueError(f"cannot inflate {key!r} of shape {tuple(params2d[key].shape)} to {shape}")
    return out


def temporal_receptive_field(model: list[dict], params: dict[str, Any]) -> float:
    """Frames seen by one unit before the head (``inf`` once a space-time or time non-local block is passed).

    ``rf += (k_t - 1) * jump`` and ``jump *= s_t`` through every conv and
    pool; the tiny C2D gives ``1 + 2 * 1 + 2 * 1 = 5`` frames (pool1, pool2).
    """
    rf, jump = 1, 1
    for spec in model:
        op, windows = lookup_layer(spec) and spec["op"], []  # (k_t, s_t) of each temporal window
        if op == "stem":
            windows = [(params["conv1.w"].shape[2], spec["stride"][0])]
        elif op == "max_pool":
            windows = [(spec["kernel_size"][0], spec["stride"][0])]
        elif op == "block":
            convs = [f"{spec['name']}.conv{j}.w" for j in range(1, spec["n_convs"] + 1)]
            windows = [(params[c].shape[2], 1) for c in convs]
        elif op == "nonlocal" and spec["space_time"] != "space":
            return float("inf")
        for k, s in windows:  # a "space" non-local block and the head have none
            rf += (k - 1) * jump
            jump *= s
    return float(rf)
