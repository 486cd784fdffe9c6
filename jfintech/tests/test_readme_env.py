"""The README's configuration table names every environment variable the code reads, and nothing
the code does not read (except variables read by libraries, listed here)."""

import ast
import re

from jfintech.testing.processes import ROOT

SCANNED = ["config", "jfintech", "reconciliation", "exceptions", "reporting", "filings"]
READ_BY_LIBRARIES = {"OTEL_EXPORTER_OTLP_ENDPOINT"}  # the OpenTelemetry SDK's own


def _env_name(node) -> str | None:
    """The variable of ``os.environ.get/setdefault/pop("X")``, ``os.environ["X"]``,
    ``os.getenv("X")``, django-environ's ``env("X")`` / ``env.int("X")`` …; None otherwise."""
    if isinstance(node, ast.Subscript):
        if isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
            key = node.slice
            return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
        return None
    if not (isinstance(node, ast.Call) and node.args):
        return None
    f, first = node.func, node.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    reads = (
        (isinstance(f, ast.Name) and f.id in ("env", "getenv"))
        or (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "env")
        or (isinstance(f, ast.Attribute) and f.attr == "getenv")
        or (
            isinstance(f, ast.Attribute)
            and f.attr in ("get", "setdefault", "pop")
            and isinstance(f.value, ast.Attribute)
            and f.value.attr == "environ"
        )
    )
    return first.value if reads else None


def variables_read() -> dict[str, str]:
    found = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if {"tests", "testing", "migrations"} & set(path.relative_to(ROOT).parts):
                continue  # the tests' own knobs are not configuration
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                name = _env_name(node)
                if name:
                    found.setdefault(name, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def variables_documented() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}


def test_the_scan_finds_the_reads():
    read = variables_read()
    # Each form of read, so a broken scan cannot pass vacuously.
    assert {"DATABASE_URL", "DB_CONN_MAX_AGE", "GUNICORN_WORKERS", "DEMO_PORT", "JFINTECH_LOCAL_DIR"} <= set(
        read
    )


def test_every_variable_read_is_in_the_readme_table_and_every_row_is_read():
    read, documented = variables_read(), variables_documented()
    missing = {name: where for name, where in read.items() if name not in documented}
    assert not missing, f"read by the code but not in README.md's Configuration table: {missing}"
    assert documented - set(read) - READ_BY_LIBRARIES == set(), "in the table but read by nothing"
