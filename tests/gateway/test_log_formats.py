"""Structured logs: one JSON object per line, or key=value lines, extras included."""

import io
import json
import logging

from navseal.gateway.logs import setup_logging


def test_json_and_key_value_lines():
    out = io.StringIO()
    setup_logging("json", "INFO", stream=out)
    logging.getLogger("navseal.test").warning("refused frame", extra={"seal_id": 7, "reason": "bad_mac"})
    logging.getLogger("navseal.test").debug("not shown at INFO")
    [line] = out.getvalue().splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"], record["msg"]) == ("warning", "navseal.test", "refused frame")
    assert (record["seal_id"], record["reason"]) == (7, "bad_mac")

    out = io.StringIO()
    setup_logging("text", "DEBUG", stream=out)
    logging.getLogger("navseal.test").info("gateway started", extra={"db": "/var/lib/a b.db", "sinks": ["x"]})
    line = out.getvalue().strip()
    assert 'level=info logger=navseal.test msg="gateway started"' in line
    assert 'db="/var/lib/a b.db"' in line and 'sinks=["x"]' in line
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(logging.WARNING)
