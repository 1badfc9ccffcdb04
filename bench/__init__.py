"""kmseg's benchmark harness: ``python -m bench`` (or ``make bench``); see bench/README.md."""
