"""``python -m nlref`` runs the command-line interface."""

from ._entry import main

raise SystemExit(main())
