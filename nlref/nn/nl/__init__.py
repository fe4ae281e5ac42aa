"""nlref.nn.nl: the non-local operation and the non-local block (Wang et al., CVPR 2018).

(``nonlocal`` is a Python keyword, hence ``nl``.)  The modules, in reading order:

* :mod:`~nlref.nn.nl.op` -- ``y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j)`` (Eq. 1) in the dense form:
  the ``{f: (affinity, backward)}`` table and the generic op that walks it;
* :mod:`~nlref.nn.nl.pairwise` -- the pairwise terms (logits, concatenation terms) and their backwards;
* :mod:`~nlref.nn.nl.chunked` -- the memory forms that never hold the affinity: online softmax,
  the factorised dot product, tiled concatenation;
* :mod:`~nlref.nn.nl.window` -- the local-window mask;
* :mod:`~nlref.nn.nl.offsets` -- the window visited by offsets (memory linear in the window);
* :mod:`~nlref.nn.nl.block` -- the block of Fig. 2: ``z = W_z y + x``, with BN, subsampling, window;
* :mod:`~nlref.nn.nl.bridge` -- non-local means is an embedded Gaussian with a key bias and a window.

Every name below is public; ``_checks`` validates the arguments once.
"""

from __future__ import annotations

from ._checks import AUTO_DENSE_MAX_ELEMENTS, DEFAULT_CHUNK_SIZE, MEMORY_FORMS, NONLOCAL_MODES, POOL_ORDERS
from .block import NONLOCAL_INITS, init_nonlocal_params, nonlocal_block_backward, nonlocal_block_forward
from .bridge import nl_means_as_nonlocal, nlm_nonlocal_inputs, patch_vectors, search_window_mask
from .chunked import (
    CHUNKED_FORMS,
    concat_chunked_backward,
    concat_chunked_forward,
    dot_factorised_backward,
    dot_factorised_forward,
    softmax_chunked_backward,
    softmax_chunked_forward,
)
from .offsets import (
    window_offsets,
    windowed_attention_backward,
    windowed_attention_forward,
    windowed_attention_map,
)
from .op import (
    attention_weights,
    concat_affinity,
    concat_affinity_backward,
    dense_backward,
    dense_forward,
    dot_affinity,
    dot_affinity_backward,
    nonlocal_op_backward,
    nonlocal_op_forward,
    softmax_affinity,
    softmax_affinity_backward,
)
from .pairwise import chunks, concat_terms, concat_terms_backward, logits, logits_backward, normaliser
from .window import as_window, local_window_mask

__all__ = [
    "NONLOCAL_MODES",
    "MEMORY_FORMS",
    "AUTO_DENSE_MAX_ELEMENTS",
    "DEFAULT_CHUNK_SIZE",
    "nonlocal_op_forward",
    "nonlocal_op_backward",
    "attention_weights",
    "dense_forward",
    "dense_backward",
    "softmax_affinity",
    "softmax_affinity_backward",
    "dot_affinity",
    "dot_affinity_backward",
    "concat_affinity",
    "concat_affinity_backward",
    "logits",
    "logits_backward",
    "concat_terms",
    "concat_terms_backward",
    "normaliser",
    "chunks",
    "softmax_chunked_forward",
    "softmax_chunked_backward",
    "dot_factorised_forward",
    "dot_factorised_backward",
    "concat_chunked_forward",
    "concat_chunked_backward",
    "CHUNKED_FORMS",
    "local_window_mask",
    "as_window",
    "window_offsets",
    "windowed_attention_forward",
    "windowed_attention_backward",
    "windowed_attention_map",
    "POOL_ORDERS",
    "NONLOCAL_INITS",
    "init_nonlocal_params",
    "nonlocal_block_forward",
    "nonlocal_block_backward",
    "patch_vectors",
    "search_window_mask",
    "nlm_nonlocal_inputs",
    "nl_means_as_nonlocal",
]
