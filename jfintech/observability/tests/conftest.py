import json
import logging

import pytest

from jfintech.observability.logging import build_logging_config


@pytest.fixture
def log_lines():
    """Every line logged in this test, rendered by the real JSON formatter, parsed back."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Capture()
    formatter_cfg = build_logging_config("INFO", "json")["formatters"]["structured"]
    factory = formatter_cfg.pop("()")
    handler.setFormatter(factory(**formatter_cfg))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in lines]
    finally:
        root.removeHandler(handler)
