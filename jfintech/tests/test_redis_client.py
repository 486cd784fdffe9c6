"""The process's shared Redis client: one per URL however many request threads ask at once."""

import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from jfintech.common import redis_client


def test_threads_racing_for_a_new_client_all_get_the_one_client_and_none_is_closed_under_them():
    # The lazy global it replaced failed this in about one trial in eight (a socket closed
    # under a thread's pipeline when the losing client was garbage-collected).
    url = settings.REDIS_URL
    for _ in range(30):
        redis_client._clients.pop((url, 1), None)
        start = threading.Barrier(16)

        def incr(_, start=start):
            start.wait()
            client = redis_client.shared_client(url, timeout_s=1)
            with client.pipeline() as pipe:  # what the rate limiter does on each request
                pipe.incr("jf:test:shared-client")
                pipe.expire("jf:test:shared-client", 60)
                pipe.execute()
            return client

        with ThreadPoolExecutor(16) as pool:
            clients = list(pool.map(incr, range(16)))  # re-raises any thread's error

        assert len({id(c) for c in clients}) == 1
        assert redis_client.shared_client(url, timeout_s=1) is clients[0]


def test_another_url_or_timeout_is_another_client():
    a = redis_client.shared_client(settings.REDIS_URL, timeout_s=1)
    assert redis_client.shared_client(settings.REDIS_URL, timeout_s=2) is not a
    assert redis_client.shared_client(settings.REDIS_URL, timeout_s=1) is a
