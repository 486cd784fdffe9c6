"""A real local HTTP server standing in for an upstream system: it can answer, fail or stall."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Upstream:
    """``script`` is consumed one action per request: "ok", "500", "slow", "badjson", "404"."""

    def __init__(self, records: list):
        self.records, self.script, self.requests = records, [], []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                upstream.requests.append(self.path)
                action = upstream.script.pop(0) if upstream.script else "ok"
                if action == "slow":
                    time.sleep(1.0)
                if action in ("500", "404"):
                    self.send_response(int(action))
                    self.end_headers()
                    self.wfile.write(b"upstream trouble")
                    return
                body = (
                    b"{not json"
                    if action == "badjson"
                    else json.dumps({"records": upstream.records}).encode()
                )
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away

            def log_message(self, *args):
                """Quiet: the default handler writes every request to stderr."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/records"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Upstream:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
