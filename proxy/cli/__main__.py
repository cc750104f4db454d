"""``python -m proxy.cli``: the ``tollgate`` command."""

from proxy.cli import main

raise SystemExit(main())
