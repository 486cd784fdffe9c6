"""Test harness shared by every app: real worker and gunicorn subprocesses, span and log readers."""
