"""``python -m stream.simulate``: the ``likeguard simulate`` command on its own."""

from stream.simulate.cli import main

raise SystemExit(main())
