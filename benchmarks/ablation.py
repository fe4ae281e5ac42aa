"""Table 2 of *Non-local Neural Networks* (Wang et al., CVPR 2018) at teaching scale.

A thin script over :mod:`nlref.nn.train.ablation` (the same as ``nlref ablate``):
trains tiny C2D / I3D / non-local networks on the synthetic long-range video
task over several seeds and writes ``ablation.md``, ``ablation.json`` and
``ablation.png`` into ``--out``.

Usage::

    python benchmarks/ablation.py --quick                 # CI smoke test, about a minute on a CPU
    python benchmarks/ablation.py --backend cupy          # full: one GPU
    python benchmarks/ablation.py --parts f --models "C2D,NL C2D" --seeds 3 --steps 600 --size 16
    nlref ablate --quick                                  # the same through the CLI
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nlref.cli import main as nlref_main  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """``nlref ablate ARGV``; see ``python benchmarks/ablation.py --help``."""
    return nlref_main(["ablate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
