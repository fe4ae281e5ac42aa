"""The folders of nlref's source tree that a wheel does not install: ``notebooks/``, ``benchmarks/``.

A source checkout (or an unpacked sdist) has them beside the ``nlref`` package.  A
wheel puts only the package into site-packages, so the notebook runner and
``nlref bench`` look in the current folder too (an unpacked sdist or a clone) and
otherwise say where the folder is, instead of listing nothing.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["source_folder", "where_to_find"]

_CHECKOUT = Path(__file__).resolve().parent.parent


def source_folder(name: str, pattern: str) -> Path | None:
    """``name`` beside the package, else in the current folder, holding files matching ``pattern``."""
    for root in (_CHECKOUT, Path.cwd()):
        folder = root / name
        if folder.is_dir() and any(folder.glob(pattern)):
            return folder
    return None


def where_to_find(name: str) -> str:
    """One line saying where ``name/`` is when this nlref was installed from a wheel."""
    return (
        f"{name}/ is not installed with the nlref wheel (this nlref lives in {_CHECKOUT / 'nlref'}); "
        f"it ships in nlref's source distribution (pip download --no-deps --no-binary nlref nlref, then "
        f"unpack it) and in the source repository: run this command from that folder"
    )
