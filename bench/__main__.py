"""``python -m bench``: run the benchmark (see bench/harness.py for the options)."""

from .harness import main

raise SystemExit(main())
