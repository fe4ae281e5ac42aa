"""nlref.nn: neural-network layers with hand-written backward passes, in chapters.

Every layer is a pair of functions, ``out, cache = f_forward(x, params)`` and
``dx, grads = f_backward(dout, cache)`` (CS231n style), on NumPy or CuPy
arrays; parameters are flat dicts of named arrays.  These are the pieces of
the non-local block and of the C2D/I3D video networks of Wang, Girshick,
Gupta, He ("Non-local Neural Networks", CVPR 2018); :mod:`nlref.gradcheck`
proves each backward against finite differences.

The chapters, in the order of the story (each package lists and documents all its names):

* :mod:`nlref.nn.layers` -- linear, elementwise, convolution, batch norm, pooling, initialisers, params;
* :mod:`nlref.nn.nl` -- the non-local operation (dense, chunked, by offsets) and the non-local block;
* :mod:`nlref.nn.video` -- C2D / I3D video ResNets with non-local blocks ("a model is data");
* :mod:`nlref.nn.train` -- optimisers, the training step and loop, checkpoints, the ablation;
* :mod:`nlref.nn.denoiser` -- the learned non-local denoiser;
* :mod:`nlref.nn.weights` -- the one file format of checkpoints and weights, and its one reader.

Below are the names a first reading needs; ``nlref.nn`` imports the first three chapters only,
so that applying a model never imports the training code.
"""

from __future__ import annotations

from .layers import (
    avg_pool_backward,
    avg_pool_forward,
    batch_norm_backward,
    batch_norm_forward,
    conv_backward,
    conv_forward,
    conv_output_shape,
    count_params,
    dropout_backward,
    dropout_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    he_normal,
    linear_backward,
    linear_forward,
    max_pool_backward,
    max_pool_forward,
    relu_backward,
    relu_forward,
    scope,
    softmax,
    softmax_cross_entropy,
    unscope,
)
from .nl import (
    NONLOCAL_MODES,
    attention_weights,
    init_nonlocal_params,
    local_window_mask,
    nl_means_as_nonlocal,
    nlm_nonlocal_inputs,
    nonlocal_block_backward,
    nonlocal_block_forward,
    nonlocal_op_backward,
    nonlocal_op_forward,
)
from .video import build_model, model_backward, model_forward

__all__ = [
    # layers
    "linear_forward",
    "linear_backward",
    "conv_forward",
    "conv_backward",
    "conv_output_shape",
    "batch_norm_forward",
    "batch_norm_backward",
    "relu_forward",
    "relu_backward",
    "max_pool_forward",
    "max_pool_backward",
    "avg_pool_forward",
    "avg_pool_backward",
    "global_avg_pool_forward",
    "global_avg_pool_backward",
    "dropout_forward",
    "dropout_backward",
    "softmax",
    "softmax_cross_entropy",
    "he_normal",
    "scope",
    "unscope",
    "count_params",
    # the non-local operation and block
    "NONLOCAL_MODES",
    "nonlocal_op_forward",
    "nonlocal_op_backward",
    "attention_weights",
    "local_window_mask",
    "init_nonlocal_params",
    "nonlocal_block_forward",
    "nonlocal_block_backward",
    "nlm_nonlocal_inputs",
    "nl_means_as_nonlocal",
    # video networks
    "build_model",
    "model_forward",
    "model_backward",
]
