"""Process logging: one line per record, as text for people or as JSON for a log pipeline
(``HEADWATER_LOG_FORMAT=json``). Engine records carry fields (``reconcile_id``, the key, the
operations sent, the fate, the attempt); the JSON form shows every field, the text form the
message, which names the same things. Nothing logged carries a secret or profile data.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

__all__ = ["LogFormat", "configure"]

LogFormat = Literal["text", "json"]

_HANDLER = "headwater"
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_JSON = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(fmt: LogFormat = "text", level: str = "INFO") -> None:
    """Send every logger's records to stderr in ``fmt`` (replacing a handler set up here before;
    handlers others installed, such as a test runner's, are left alone)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(_JSON, rename_fields={"levelname": "level", "name": "logger"})
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
