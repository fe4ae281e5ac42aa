"""Flat dicts of named parameters: ``{"res3.1.conv2.w": array, ...}``.

A model's parameters (and its gradients, its BatchNorm state, its optimiser
state) are one flat dict of arrays, keyed by dotted names.  Such a dict saves
to ``.npz`` as it is.  A layer only sees its own local keys (``"w"``, ``"b"``):
:func:`scope` cuts them out under a prefix and :func:`unscope` puts the
gradients back under it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ...backend import asarray, to_numpy

__all__ = ["scope", "unscope", "merge", "to_backend", "params_to_numpy", "count_params"]


def scope(params: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries under ``prefix + "."`` with the prefix stripped.

    >>> scope({"nl.theta.w": 1, "nl.theta.b": 2, "fc.w": 3}, "nl.theta")
    {'w': 1, 'b': 2}
    """
    head = prefix + "."
    return {k[len(head) :]: v for k, v in params.items() if k.startswith(head)}


def unscope(grads: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries with ``prefix + "."`` prepended to each key (inverse of :func:`scope`)."""
    return {f"{prefix}.{k}": v for k, v in grads.items()}


def merge(*dicts: dict[str, Any]) -> dict[str, Any]:
    """One dict from several; ``ValueError`` if a key appears twice."""
    out: dict[str, Any] = {}
    for d in dicts:
        dup = out.keys() & d.keys()
        if dup:
            raise ValueError(f"merge: duplicate parameter names {sorted(dup)}")
        out.update(d)
    return out


def to_backend(params: dict[str, Any], xp: ModuleType | str) -> dict[str, Any]:
    """Copy every array to the backend ``xp`` (``numpy``/``cupy`` module or name)."""
    return {k: asarray(v, xp=xp) for k, v in params.items()}


def params_to_numpy(params: dict[str, Any]) -> dict[str, Any]:
    """Every array as a NumPy array (copied from the GPU when needed), e.g. to save to ``.npz``."""
    return {k: to_numpy(v) for k, v in params.items()}


def count_params(params: dict[str, Any]) -> int:
    """Total number of scalars in a parameter dict."""
    return int(sum(int(v.size) for v in params.values()))
