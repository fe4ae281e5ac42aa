"""nlref.nn.video: C2D and I3D video ResNets with non-local blocks (Wang et al., CVPR 2018, Sec. 4).

A model is data: a list of layer specs walked through a ``{op: (forward, backward)}`` table, a flat
dict of named parameters and a dict of BatchNorm statistics.  The modules, in reading order:

* :mod:`~nlref.nn.video.blocks` -- conv-BN-ReLU, the basic and bottleneck residual blocks, the head,
  and the non-local block over space-time, space or time;
* :mod:`~nlref.nn.video.layers` -- the layer kinds of the table (stem, pool, block, nonlocal, head);
* :mod:`~nlref.nn.video.models` -- the layouts, the placement rules of the non-local blocks,
  :func:`build_model`, :func:`model_forward`, :func:`model_backward`;
* :mod:`~nlref.nn.video.temporal` -- time: inflating 2-D kernels (I3D) and the temporal receptive field.
"""

from __future__ import annotations

from .blocks import (
    SPACE_TIME,
    basic_block_backward,
    basic_block_forward,
    bottleneck_block_backward,
    bottleneck_block_forward,
    conv_bn_backward,
    conv_bn_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    head_backward,
    head_forward,
    space_time_fold,
    space_time_nonlocal_backward,
    space_time_nonlocal_forward,
    space_time_unfold,
)
from .layers import (
    BLOCKS,
    MODEL_LAYERS,
    block_layer,
    head_layer,
    lookup_layer,
    nonlocal_layer,
    pool_layer,
    stem_layer,
)
from .models import (
    I3D_INFLATION,
    INFLATED_CONV,
    LAYOUTS,
    build_model,
    c2d,
    count_nonlocal,
    i3d,
    inflation_table,
    model_backward,
    model_forward,
    nonlocal_positions,
)
from .temporal import feature_shapes, inflate_2d_to_3d, temporal_receptive_field

__all__ = [
    "conv_bn_forward",
    "conv_bn_backward",
    "conv_bn_relu_forward",
    "conv_bn_relu_backward",
    "basic_block_forward",
    "basic_block_backward",
    "bottleneck_block_forward",
    "bottleneck_block_backward",
    "head_forward",
    "head_backward",
    "SPACE_TIME",
    "space_time_fold",
    "space_time_unfold",
    "space_time_nonlocal_forward",
    "space_time_nonlocal_backward",
    "BLOCKS",
    "MODEL_LAYERS",
    "lookup_layer",
    "stem_layer",
    "pool_layer",
    "block_layer",
    "nonlocal_layer",
    "head_layer",
    "LAYOUTS",
    "I3D_INFLATION",
    "INFLATED_CONV",
    "inflation_table",
    "nonlocal_positions",
    "count_nonlocal",
    "c2d",
    "i3d",
    "build_model",
    "model_forward",
    "model_backward",
    "inflate_2d_to_3d",
    "temporal_receptive_field",
    "feature_shapes",
]
