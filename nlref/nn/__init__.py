"""nlref.nn: neural-network layers with hand-written backward passes.

Every layer is a pair of functions, ``out, cache = f_forward(x, params)`` and
``dx, grads = f_backward(dout, cache)`` (CS231n style), on NumPy or CuPy
arrays; parameters are flat dicts of named arrays.  These are the pieces of
the non-local block and of the C2D/I3D video networks of Wang, Girshick,
Gupta, He ("Non-local Neural Networks", CVPR 2018); :mod:`nlref.gradcheck`
proves each backward against finite differences.
"""

from __future__ import annotations

from .conv import conv_backward, conv_forward, conv_output_shape
from .init import as_generator, gaussian, he_normal, ones, zeros
from .layers import (
    dropout_backward,
    dropout_forward,
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
    softmax,
    softmax_cross_entropy,
)
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

from . import (  # noqa: E402
    blocks,
    bridge,
    denoiser,
    denoiser_train,
    models,
    nonlocal_block,
    nonlocal_op,
    nonlocal_window,
    optim,
    optim_flat,
    train,
    window,
)
from .blocks import *  # noqa: E402,F401,F403
from .bridge import *  # noqa: E402,F401,F403
from .denoiser import *  # noqa: E402,F401,F403
from .denoiser_train import *  # noqa: E402,F401,F403
from .models import *  # noqa: E402,F401,F403
from .nonlocal_block import *  # noqa: E402,F401,F403
from .nonlocal_op import *  # noqa: E402,F401,F403
from .nonlocal_window import *  # noqa: E402,F401,F403
from .optim import *  # noqa: E402,F401,F403
from .optim_flat import *  # noqa: E402,F401,F403
from .train import *  # noqa: E402,F401,F403
from .window import *  # noqa: E402,F401,F403

# ``train`` leaves its function ``train`` out of __all__ so that ``nlref.nn.train``
# stays the module; call it as ``nlref.nn.train.train(config)``.
_MODULES = (optim, optim_flat, nonlocal_op, nonlocal_block, blocks, bridge, models, train, window)
for _m in (*_MODULES, denoiser, denoiser_train, nonlocal_window):
    __all__ += list(_m.__all__)
__all__ = list(dict.fromkeys(__all__))  # NONLOCAL_MODES is exported by two modules
del _m
