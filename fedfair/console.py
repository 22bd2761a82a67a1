"""What a ``fedfair run`` prints: progress bars, the summary, the results path and warnings. Every
log record also goes to the run's log file (``<output_dir>/fedfair.log``, conf/config.yaml's
``hydra.job_logging``), where the rest (Flower's per-round lines, the config it sends, library
warnings) stays.

A record reaches the console when it is a warning or worse, or when it is logged with
``extra=SUMMARY`` (the summary table). :func:`quiet` covers what logging configuration cannot reach:
Python warnings, and Flower's console in the Ray workers."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

SUMMARY = {"console": True}  # ``log.info(line, extra=SUMMARY)``: this line is for the console too
# Warnings that are the engine's business, not the run's: Flower's notice that ``run_simulation`` is
# deprecated, and Python warnings of the libraries (logging.captureWarnings sends them to py.warnings).
_FILE_ONLY_LOGGERS = ("py.warnings",)
_FILE_ONLY_PREFIXES = ("DEPRECATED FEATURE", "FEATURE UPDATE")


class ConsoleFormatter(logging.Formatter):
    """The message alone; a warning or error not marked as summary is prefixed with its level."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING and not getattr(record, "console", False):
            text = f"{record.levelname.lower()}: {text}"
        return text


class ConsoleFilter(logging.Filter):
    """The console handler's filter (the file handler takes every record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "console", False):
            return True
        if record.levelno < logging.WARNING or record.name in _FILE_ONLY_LOGGERS:
            return False
        return not str(record.msg).lstrip().startswith(_FILE_ONLY_PREFIXES)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Inside the block, Python warnings become log records (py.warnings: the log file only), and
    Flower's console handler in the Ray workers started here shows errors only (FLWR_LOG_LEVEL,
    which they inherit; its INFO/WARNING lines there, e.g. "Manually terminating ClientAppActor",
    are the engine's chatter), unless the user set FLWR_LOG_LEVEL."""
    user_level = os.environ.get("FLWR_LOG_LEVEL")
    os.environ.setdefault("FLWR_LOG_LEVEL", "ERROR")
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        if user_level is None:
            os.environ.pop("FLWR_LOG_LEVEL", None)
