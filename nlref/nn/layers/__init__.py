"""nlref.nn.layers: the layers, each a forward/backward pair (CS231n style).

``out, cache = f_forward(x, params)`` and ``dx, grads = f_backward(dout, cache)`` on NumPy or
CuPy arrays; parameters are flat dicts of named arrays.  The modules, in reading order:

* :mod:`~nlref.nn.layers.linear` -- ``W x + b`` at every position (the non-local block's 1x1x1 convs);
* :mod:`~nlref.nn.layers.elementwise` -- ReLU, dropout, softmax, softmax cross-entropy;
* :mod:`~nlref.nn.layers.conv` -- N-D convolution as im2col and one matrix product;
* :mod:`~nlref.nn.layers.norm` -- batch normalisation;
* :mod:`~nlref.nn.layers.pool` -- max, average and global average pooling;
* :mod:`~nlref.nn.layers.init` -- initialisers (He, Gaussian, zeros, ones) and seeds;
* :mod:`~nlref.nn.layers.params` -- flat parameter dicts: scope, merge, move between backends.

Every name below is public; ``_common`` holds the checks and window arithmetic they share.
"""

from __future__ import annotations

from .conv import conv_backward, conv_forward, conv_output_shape
from .elementwise import (
    dropout_backward,
    dropout_forward,
    relu_backward,
    relu_forward,
    softmax,
    softmax_cross_entropy,
)
from .init import as_generator, gaussian, he_normal, ones, zeros
from .linear import linear_backward, linear_forward
from .norm import batch_norm_backward, batch_norm_forward
from .params import count_params, merge, params_to_numpy, scope, to_backend, unscope
from .pool import (
    avg_pool_backward,
    avg_pool_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    max_pool_backward,
    max_pool_forward,
)

__all__ = [
    "linear_forward",
    "linear_backward",
    "relu_forward",
    "relu_backward",
    "dropout_forward",
    "dropout_backward",
    "softmax",
    "softmax_cross_entropy",
    "conv_forward",
    "conv_backward",
    "conv_output_shape",
    "batch_norm_forward",
    "batch_norm_backward",
    "max_pool_forward",
    "max_pool_backward",
    "avg_pool_forward",
    "avg_pool_backward",
    "global_avg_pool_forward",
    "global_avg_pool_backward",
    "as_generator",
    "he_normal",
    "gaussian",
    "zeros",
    "ones",
    "scope",
    "unscope",
    "merge",
    "to_backend",
    "params_to_numpy",
    "count_params",
]
