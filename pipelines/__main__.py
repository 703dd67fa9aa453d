"""``python -m pipelines``: the command line (:mod:`pipelines.cli.main`)."""

import sys

from pipelines.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
