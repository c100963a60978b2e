"""Log lines are JSON objects with the fields a log reader filters on."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime

from runtime.logs import formatter


def test_a_log_line_is_one_json_object_with_its_extra_fields() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter())
    logger = logging.getLogger("jobline.test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("job %s due", "j1", extra={"job_id": "j1", "offset": 7})
        try:
            int("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first | {"ts": None} == {
        "level": "WARNING",
        "logger": "jobline.test",
        "msg": "job j1 due",
        "job_id": "j1",
        "offset": 7,
        "ts": None,
    }
    assert datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert "ValueError: invalid literal" in second["exc"]
