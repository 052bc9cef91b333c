"""``python -m senet_lib``: the command line (see :mod:`senet_lib.cli`)."""

from .cli import main

raise SystemExit(main())
