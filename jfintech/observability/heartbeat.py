"""Beat's liveness signal: a file touched after every scheduler tick, checked by the kubelet.

Beat serves its metrics from a thread, so an answering port says nothing about the scheduler
loop. The DatabaseScheduler ticks at least every 5 s; a file older than the probe's limit means
the loop is stuck, and restarting the (single) beat pod is the remedy. Local on purpose: a
broker round trip (Celery's beat ping) would restart beat whenever Redis blips.

    python -m jfintech.observability.heartbeat /tmp/beat-heartbeat 120   # exit 0 = alive
"""

from __future__ import annotations

import os
import sys
import time


def touch(path: str) -> None:
    with open(path, "a"):
        os.utime(path)


def is_fresh(path: str, max_age_seconds: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime <= max_age_seconds
    except FileNotFoundError:
        return False


if __name__ == "__main__":
    path, max_age = sys.argv[1], float(sys.argv[2])
    if not is_fresh(path, max_age):
        sys.exit(f"{path} missing or older than {max_age:g}s: the beat loop is not ticking")
