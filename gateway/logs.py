"""The gateway's log lines: one JSON object per line (the default), or key=value lines.

`setup_logging(fmt, level)` installs the formatter on the root logger; `extra={...}` fields of a
log call become fields of the line.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and `extra={...}` fields."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class KeyValueLogFormatter(logging.Formatter):
    """ts=... level=... logger=... msg="..." key=value for every `extra` field (values JSON-quoted
    when they are not plain words), one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        text = (
            f"ts={record.created:.3f} level={record.levelname.lower()} logger={record.name} "
            f"msg={json.dumps(record.getMessage(), ensure_ascii=False)}"
        )
        for key, value in vars(record).items():
            if key not in JsonLogFormatter._STANDARD and not key.startswith("_"):
                plain = isinstance(value, (int, float)) or (isinstance(value, str) and value.isidentifier())
                text += f" {key}={value if plain else json.dumps(value, default=str, ensure_ascii=False)}"
        if record.exc_info:
            text += " exc=" + json.dumps(self.formatException(record.exc_info))
        return text


def setup_logging(fmt: str = "json", level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLogFormatter() if fmt == "json" else KeyValueLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
