"""The ``--order`` option the pipeline benchmarks share: Argo's task order, one at a time, or both."""

from __future__ import annotations

import argparse

ORDERS = ("argo", "sequential")


def add_order_option(parser: argparse.ArgumentParser) -> None:
    """``--order argo sequential``: run in each order given (default: both), in that order."""
    parser.add_argument(
        "--order",
        nargs="+",
        choices=ORDERS,
        default=list(ORDERS),
        help="task order(s) to run in: argo (each task as soon as its upstreams succeeded) and/or "
        "sequential (one at a time); default both",
    )
