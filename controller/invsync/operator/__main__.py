"""`python -m invsync.operator run|sync|status`: the operator's verbs without the full CLI."""

from .commands import main

raise SystemExit(main())
