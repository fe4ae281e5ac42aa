"""The console script's first lines: SIGTERM is handled before NumPy (or anything heavy) is imported.

``nlref ...`` and ``python -m nlref ...`` start here.  Importing NumPy, SciPy and
the command's modules, then reading the images, takes a second or more; a SIGTERM
in that time would otherwise kill the process silently (exit -15).  The handler
below turns it into one line and exit status 143 (128 + SIGTERM).  Training
replaces it while its loop runs (:func:`nlref.nn.train.run_loop` saves a
checkpoint and prints "stopped by SIGTERM after step N ...") and puts it back after.
This module imports only the standard library, and nothing of nlref but its
package ``__init__`` (which imports no NumPy).
"""

from __future__ import annotations

import signal
import sys

__all__ = ["EarlyStop", "main"]

#: What the early handler says, by subcommand: training has not started, so nothing is saved.
BEFORE_TRAINING = "stopped before the first step; nothing to save"
NOTHING_WRITTEN = "stopped by SIGTERM; nothing written"


class EarlyStop(KeyboardInterrupt):
    """SIGTERM outside a training loop: ``line`` is printed, ``exit_code`` 143 returned."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.exit_code = 128 + signal.SIGTERM
        super().__init__(line)


def _early_line(argv: list[str]) -> str:
    training = any(a in ("train", "train-denoiser", "ablate") for a in argv[:3])
    return BEFORE_TRAINING if training else NOTHING_WRITTEN


def main() -> int:
    """Install the early SIGTERM handler, then import and run :func:`nlref.cli.main`."""
    line = _early_line(sys.argv[1:])

    def handler(signum: int, frame: object) -> None:
        raise EarlyStop(line)

    signal.signal(signal.SIGTERM, handler)
    try:
        from .cli import main as cli_main

        return cli_main()
    except EarlyStop as exc:  # during the imports, before nlref.cli.main could catch it
        print(exc.line, file=sys.stderr, flush=True)
        return exc.exit_code
