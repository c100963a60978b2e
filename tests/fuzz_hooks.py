"""Schemathesis hooks (schemathesis.toml): every valid Idempotency-Key it sends is made
unique, so that a key it happens to generate twice does not name two different requests."""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

from api.service import KEY_PATTERN

_KEY = re.compile(KEY_PATTERN)


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: Any, kwargs: dict[str, Any]) -> None:
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and _KEY.match(value):
            headers[name] = f"{value[:160]}.{uuid.uuid4().hex}"
