"""``make demo`` / ``python -m nlref.demo``: a first look at nlref."""

from __future__ import annotations

from . import __version__
from .backend import backend_report


def main() -> int:
    print(f"nlref {__version__}")
    for key, value in backend_report().items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
