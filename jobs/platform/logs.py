"""One logging set-up for every command-line entry point (``python -m jobs.<package>.<module>``)."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int | str = logging.INFO) -> None:
    """Log to stderr with the project's format at ``level``. Safe to call more than once."""
    logging.basicConfig(level=level, format=FORMAT)
    logging.getLogger().setLevel(level)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # py4j logs at interpreter exit, after handlers close
