"""Count array operations: a CPU proxy for GPU kernel launches.

On a GPU every CuPy array operation is one kernel launch costing 10-20
microseconds of Python and driver time whatever its size (PAPER_NOTES, "GPU
cost model"), so on small problems the number of operations, not the
arithmetic, sets the time.  This module counts those operations on NumPy, in
the tests, without a GPU::

    with count_ops() as ops:
        x, params = ops.track(x), ops.track(params)
        logits, cache, _ = model_forward(x, params, state, model, train=True)
    ops.total                  # array operations issued
    print(ops.table())         # where they went, by nlref module and function

:class:`CountedArray` is an ``np.ndarray`` subclass, so :func:`nlref.backend.get_namespace`
treats it as NumPy and nlref's code runs unchanged; its results stay counted.

What counts as one operation (one kernel on CuPy)
    * a ufunc call, with any method: operators (``a + b``, ``a @ b``, ``a > 0``,
      ``a += b``), ``np.exp(a)``, reductions (``a.sum()``, ``a.max()``),
      ``np.maximum(a, b, out=...)``, ``np.add.at``;
    * a NumPy function dispatched through ``__array_function__``
      (``np.concatenate``, ``np.where``, ``np.einsum``, ``np.pad``, ...) once,
      whatever it calls inside (one function is one unit, as one CuPy kernel);
    * the methods ``copy``, ``astype`` (when it copies), ``mean``, ``var``,
      ``std``, ``argmax``, ``argmin``, ``clip``, ``cumsum``, ``fill``, ``sort``,
      ``argsort``, ``take``, ``repeat``, ``nonzero``, ``flatten``, ``dot``;
    * ``reshape`` / ``ravel`` (method or function) and ``np.ascontiguousarray``
      / ``np.asarray`` / ``np.array`` only when they copy an array or convert a
      list (a scalar such as ``np.asarray(step)`` is host metadata, not counted);
    * an assignment ``a[...] = b`` and an advanced (integer-array or boolean)
      index ``a[idx]``;
    * ``np.zeros``, ``np.empty``, ``np.ones``, ``np.full``, ``np.arange``,
      ``np.eye``, ``np.zeros_like``... (an allocation; ``empty`` launches no
      kernel on CuPy but is counted: an upper bound is the safe side).

What is not counted
    * views: basic slicing ``a[1:, ::2]``, ``a.T``, ``transpose``,
      ``swapaxes``, ``moveaxis``, ``expand_dims``, ``squeeze``, ``broadcast_to``,
      ``sliding_window_view``, a ``reshape`` that needs no copy;
    * work inside SciPy / scikit-image C code, and operations on plain
      ``np.ndarray`` values that never met a tracked array;
    * host round trips ``float(a)``, ``int(a)``, ``bool(a)``, ``a.item()``: they
      launch no kernel but wait for the GPU, so they are tallied apart in
      :attr:`OpCounter.syncs`.

To see the creation functions, :func:`count_ops` replaces them (and
``asarray`` / ``ascontiguousarray`` / ``array``, which would drop the subclass)
in the ``numpy`` module for the duration of the block and restores them on
exit: not thread-safe, meant for tests and benchmarks.  Counts are at the
top level only: a NumPy function implemented with other NumPy calls counts
once.  Each operation is attributed to the innermost calling function of
nlref (``"nlref.nn.layers.conv_forward"``), for :meth:`OpCounter.table`.
"""

from __future__ import annotations

import collections
import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["CountedArray", "OpCounter", "count_ops"]

# NumPy functions that return views (or metadata) and launch nothing
_VIEWS = frozenset(
    {
        "transpose",
        "swapaxes",
        "moveaxis",
        "rollaxis",
        "expand_dims",
        "squeeze",
        "broadcast_to",
        "broadcast_arrays",
        "atleast_1d",
        "atleast_2d",
        "atleast_3d",
        "sliding_window_view",
        "shape",
        "ndim",
        "size",
        "result_type",
        "may_share_memory",
        "shares_memory",
        "real",
        "imag",
        "diagonal",
        "iscomplexobj",
        "isrealobj",
        "can_cast",
        "min_scalar_type",
        "array_equal",
    }
)
# copies only when the data cannot be viewed
_MAYBE_COPY = frozenset({"reshape", "ravel"})
_COUNTED_METHODS = (
    "copy",
    "mean",
    "var",
    "std",
    "argmax",
    "argmin",
    "clip",
    "cumsum",
    "cumprod",
    "fill",
    "sort",
    "argsort",
    "take",
    "repeat",
    "nonzero",
    "flatten",
    "dot",
    "round",
    "put",
    "searchsorted",
    "trace",
)
_CREATION = ("zeros", "empty", "ones", "full", "arange", "eye", "identity", "linspace")
_CONVERSION = ("asarray", "asanyarray", "ascontiguousarray", "array")
_asarray = np.asarray  # the original, also while count_ops has replaced np.asarray
_HOST_SCALARS = (int, float, bool, np.generic)  # np.asarray(0): host metadata such as a step count
_BASIC_INDEX = (int, np.integer, slice, type(None), type(Ellipsis))


class OpCounter:
    """Tally of the array operations issued while a :func:`count_ops` block runs.

    Attributes
    ----------
    total : int
        Operations counted (the kernel-launch proxy).
    syncs : int
        Host round trips (``float(a)``, ``a.item()``, ``bool(a)``, ...).
    by_site : collections.Counter
        Operations per ``"module.function"`` of the innermost nlref caller.
    by_op : collections.Counter
        Operations per NumPy name (``"multiply"``, ``"add.reduce"``, ``"concatenate"``).
    """

    def __init__(self) -> None:
        self.total = 0
        self.syncs = 0
        self.by_site: collections.Counter = collections.Counter()
        self.by_op: collections.Counter = collections.Counter()
        self.active = True
        self._depth = 0

    def count(self, name: str) -> None:
        """Count one operation ``name``, unless inside another counted operation or after the block."""
        if self.active and self._depth == 0:
            self.total += 1
            self.by_op[name] += 1
            self.by_site[_site()] += 1

    @contextlib.contextmanager
    def op(self, name: str, counted: bool = True) -> Iterator[None]:
        """Count one operation ``name`` (if ``counted``); what its body calls is not counted again."""
        if counted:
            self.count(name)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def track(self, obj: Any) -> Any:
        """``obj`` with every ndarray in it (nested dicts, lists, tuples) as a :class:`CountedArray` view."""
        if isinstance(obj, dict):
            return {k: self.track(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.track(v) for v in obj)
        return self.wrap(obj)

    def wrap(self, value: Any) -> Any:
        """An ndarray (or NumPy scalar from a reduction) as a counted view; anything else unchanged."""
        if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)):
            value = _asarray(value)  # CuPy reductions return 0-d arrays, not scalars
        if isinstance(value, np.ndarray):
            if type(value) is not CountedArray:
                value = value.view(CountedArray)
            value._counter = self
        return value

    def by_prefix(self, prefix: str) -> int:
        """Operations whose site starts with ``prefix`` (``"nlref.nn.train.optim"``)."""
        return sum(n for site, n in self.by_site.items() if site.startswith(prefix))

    def by_module(self) -> collections.Counter:
        """Operations per nlref module (``"nlref.nn.layers.conv"``)."""
        out: collections.Counter = collections.Counter()
        for site, n in self.by_site.items():
            out[site.rsplit(".", 1)[0]] += n
        return out

    def table(self, top: int = 20) -> str:
        """The ``top`` busiest call sites, then the total, as aligned text."""
        rows = self.by_site.most_common(top)
        width = max([len(s) for s, _ in rows] + [5])
        lines = [f"{site.ljust(width)}  {n:6d}" for site, n in rows]
        return "\n".join([*lines, f"{'total'.ljust(width)}  {self.total:6d}  (host syncs: {self.syncs})"])


def _site() -> str:
    """``"module.function"`` of the innermost nlref caller (not this module), else the first other caller."""
    frame = sys._getframe(2)
    fallback = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("nlref.") and module != __name__:
            return f"{module}.{frame.f_code.co_name}"
        if fallback is None and not module.startswith(("numpy", __name__, "contextlib")):
            fallback = f"{module}.{frame.f_code.co_name}"
        frame = frame.f_back
    return fallback or "<unknown>"


def _unwrap(values: Any) -> Any:
    return tuple(v.view(np.ndarray) if isinstance(v, CountedArray) else v for v in values)


def _wrap_result(counter: OpCounter, result: Any) -> Any:
    if isinstance(result, (tuple, list)):
        return type(result)(counter.wrap(r) for r in result)
    return counter.wrap(result)


def _shares(result: Any, source: Any) -> bool:
    if not (isinstance(result, np.ndarray) and isinstance(source, np.ndarray)):
        return False
    return bool(np.may_share_memory(result.view(np.ndarray), source.view(np.ndarray)))


def _is_basic_index(key: Any) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return all(isinstance(k, _BASIC_INDEX) and not isinstance(k, bool) for k in keys)


class CountedArray(np.ndarray):
    """An ``np.ndarray`` whose operations are tallied by an :class:`OpCounter` (module docstring)."""

    _counter: OpCounter | None = None

    def __array_finalize__(self, obj: Any) -> None:
        self._counter = getattr(obj, "_counter", None)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        counter = self._counter
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = _unwrap(out)
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        with counter.op(name):
            result = getattr(ufunc, method)(*_unwrap(inputs), **kwargs)
        if out is not None:  # in place: hand back the caller's own (counted) arrays
            return out[0] if len(out) == 1 else out
        return _wrap_result(counter, result)

    def __array_function__(self, func: Callable, types: tuple, args: tuple, kwargs: dict) -> Any:
        counter, name = self._counter, func.__name__
        if name in _MAYBE_COPY:
            with counter.op(name, counted=False):
                result = func._implementation(*args, **kwargs)
            if not _shares(result, args[0]):
                counter.count(name)
            return _wrap_result(counter, result)
        with counter.op(name, counted=name not in _VIEWS):
            result = func._implementation(*args, **kwargs)
        return _wrap_result(counter, result)

    def __getitem__(self, key: Any) -> Any:
        if _is_basic_index(key):
            return self._counter.wrap(super().__getitem__(key))
        with self._counter.op("getitem"):
            return self._counter.wrap(super().__getitem__(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._counter.op("setitem"):
            super().__setitem__(key, value)

    def astype(self, dtype: Any, *args: Any, **kwargs: Any) -> Any:
        result = super().astype(dtype, *args, **kwargs)
        if result is not self:
            self._counter.count("astype")
        return result

    def reshape(self, *shape: Any, **kwargs: Any) -> Any:
        result = super().reshape(*shape, **kwargs)
        if not _shares(result, self):
            self._counter.count("reshape")
        return result

    def ravel(self, *args: Any, **kwargs: Any) -> Any:
        result = super().ravel(*args, **kwargs)
        if not _shares(result, self):
            self._counter.count("ravel")
        return result

    def _sync(self, convert: Callable) -> Any:
        if self._counter is not None and self._counter.active:
            self._counter.syncs += 1
        return convert(self.view(np.ndarray))

    def __float__(self) -> float:
        return self._sync(float)

    def __int__(self) -> int:
        return self._sync(int)

    def __bool__(self) -> bool:
        return self._sync(bool)

    def item(self, *args: Any) -> Any:
        return self._sync(lambda a: a.item(*args))

    def tolist(self) -> Any:
        return self._sync(lambda a: a.tolist())


def _counted_method(name: str) -> Callable:
    base = getattr(np.ndarray, name)

    def method(self: CountedArray, *args: Any, **kwargs: Any) -> Any:
        with self._counter.op(name):
            return _wrap_result(self._counter, base(self, *args, **kwargs))

    method.__name__ = name
    method.__doc__ = f"``ndarray.{name}``, counted as one operation."
    return method


for _name in _COUNTED_METHODS:
    setattr(CountedArray, _name, _counted_method(_name))


def _counted_function(counter: OpCounter, name: str, original: Callable) -> Callable:
    """``np.<name>`` that counts an allocation, or a conversion that copies, and returns a counted array."""
    converts = name in _CONVERSION

    def function(*args: Any, **kwargs: Any) -> Any:
        if counter._depth > 0 or not counter.active:  # inside a NumPy function, or after the block
            return original(*args, **kwargs)
        with counter.op(name, counted=False):
            result = original(*args, **kwargs)
        if not converts or not (_shares(result, args[0]) or isinstance(args[0], _HOST_SCALARS)):
            counter.count(name)
        return counter.wrap(result)

    function.__name__ = name
    return function


@contextlib.contextmanager
def count_ops() -> Iterator[OpCounter]:
    """Count array operations in a block; yields the :class:`OpCounter`.

    Arrays enter the count through :meth:`OpCounter.track` (or are created by
    NumPy inside the block).  ``numpy``'s creation and conversion functions
    are replaced for the block's duration (module docstring); counting stops
    at exit, while the arrays stay usable.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones(3)
    >>> with count_ops() as ops:
    ...     a = ops.track(x)
    ...     b = (a * 2 + 1).sum()
    >>> ops.total, float(b)
    (3, 9.0)
    """
    counter = OpCounter()
    saved = {name: getattr(np, name) for name in _CREATION + _CONVERSION}
    try:
        for name, original in saved.items():
            setattr(np, name, _counted_function(counter, name, original))
        yield counter
    finally:
        for name, original in saved.items():
            setattr(np, name, original)
        counter.active = False
