"""One Redis client per process and URL, created once even when request threads race for it.

redis-py closes a client's connection pool, connections in use included, when the client is
garbage-collected. A lazily created module global (``if _client is None: _client = Redis(...)``)
is therefore unsafe under gunicorn's threads: two threads that both find no client each create
one, the first is dropped, and its pool's sockets close under the command the first thread has
in flight (``ValueError: I/O operation on closed file``, a 500 from the API's rate limiter when
twenty requests arrived at once on a fresh worker).
"""

from __future__ import annotations

import threading

import redis

_lock = threading.Lock()
_clients: dict[tuple[str, float], redis.Redis] = {}


def shared_client(url: str, *, timeout_s: float) -> redis.Redis:
    """The process's client for ``url``; socket connect and read time out after ``timeout_s``."""
    key = (url, timeout_s)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
                _clients[key] = client
    return client
