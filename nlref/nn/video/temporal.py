"""Time in the video models: inflating 2-D kernels (I3D), the temporal receptive field, the map shapes.

Two questions of Wang et al. (CVPR 2018, Sec. 4.1) about time: how an I3D
network starts from a C2D one (each 2-D kernel repeated over the frames of
its 3-D kernel and divided by their number, Carreira & Zisserman, CVPR 2017),
and how many frames one unit of a network sees -- the number that decides
whether the marks of the synthetic task (:mod:`nlref.data.synthetic_video`)
ever meet inside a convolution, or only in a non-local block -- and how
many frames and pixels each stage's feature map keeps (paper, Table 1),
which sets the size of a non-local block's affinity.
"""

from __future__ import annotations

from typing import Any

from ...backend import get_namespace
from ..layers import conv_output_shape
from .layers import lookup_layer

__all__ = ["inflate_2d_to_3d", "temporal_receptive_field", "feature_shapes"]


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


def feature_shapes(model: list[dict], params: dict[str, Any], clip: tuple[int, int, int]) -> dict[str, tuple]:
    """Shape ``(C, T, H, W)`` of the feature map after each stage, for clips of ``clip = (T, H, W)`` frames.

    Walks the specs with :func:`nlref.nn.conv_output_shape` (the stem's 'same'
    padding, the pools' padding, the first block's stride of each stage); no
    clip is run.  Keys: ``"conv1"``, ``"pool1"``, ``"res2"``, ``"pool2"``,
    ``"res3"``, ... (a stage: the output of its last residual block; a
    non-local block keeps its input's shape).  For the paper's C2D ResNet-50
    (``c2d(layout="resnet50")``) on ``(32, 224, 224)`` it gives Table 1 of
    Wang et al. (CVPR 2018):

    =====  ===============  ========
    stage  T x H x W        channels
    =====  ===============  ========
    conv1  16 x 112 x 112   64
    pool1  8 x 56 x 56      64
    res2   8 x 56 x 56      256
    pool2  4 x 56 x 56      256
    res3   4 x 28 x 28      512
    res4   4 x 14 x 14      1024
    res5   4 x 7 x 7        2048
    =====  ===============  ========
    """
    if len(clip) != 3 or any(int(n) < 1 for n in clip):
        raise ValueError(f"clip must be (T, H, W) with positive sizes, received {clip!r}")
    size, channels, shapes, n_pool = tuple(int(n) for n in clip), None, {}, 0
    for spec in model:
        op = lookup_layer(spec) and spec["op"]
        if op == "stem":
            w = params["conv1.w"].shape
            size = conv_output_shape(size, w[2:], stride=spec["stride"], padding=tuple(k // 2 for k in w[2:]))
            channels, name = w[0], "conv1"
        elif op == "max_pool":
            k, stride, pad = spec["kernel_size"], spec["stride"], spec["padding"]
            size = conv_output_shape(size, k, stride=stride, padding=pad)
            n_pool += 1
            name = f"pool{n_pool}"
        elif op == "block":  # every conv has 'same' padding: only the stride changes the size
            size = conv_output_shape(size, 1, stride=spec["stride"])
            channels = params[f"{spec['name']}.conv{spec['n_convs']}.w"].shape[0]
            name = spec["name"].split(".")[0]
        else:  # a non-local block keeps the shape; the head pools it away
            continue
        shapes[name] = (int(channels),) + tuple(int(n) for n in size)
    return shapes
