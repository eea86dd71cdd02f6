"""The attackers of the read-your-writes flood test, in a process of their own.

`python -m tests.resilience.flood PORT ATTACKERS SECONDS` with the attacker's headers as JSON in FLOOD_HEADERS:
ATTACKERS threads each keep one read with a random `includes_event_id` in flight, retrying after the
answer's Retry-After (plus jitter), for SECONDS; prints {"sent": N, "statuses": {...}} as JSON.
Its own process, so its 200 threads do not take the GIL from the client whose latency the test
measures (in one process they did: the measuring thread waited for the attackers, not for the server).
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import uuid

from tests.resilience.support import Client


def flood(port: int, headers: dict[str, str], attackers: int, seconds: float) -> dict[str, object]:
    stop = threading.Event()
    lock = threading.Lock()
    sent = 0
    statuses: dict[int, int] = {}

    def attack() -> None:
        nonlocal sent
        client = Client(port, headers, timeout_s=30)
        stop.wait(random.random())  # clients come within a second, as independent ones do
        while not stop.is_set():
            answer = client.get(f"/v1/municipalities/GM0363/balances/2024?includes_event_id={uuid.uuid4()}")
            client.close()  # a new connection each time: the server closes one idle for 2 s (keep-alive)
            with lock:
                sent += 1
                statuses[answer.status] = statuses.get(answer.status, 0) + 1
            stop.wait(float(answer.retry_after or 1) + random.random())  # the pacing the answer asks for

    threads = [threading.Thread(target=attack, daemon=True) for _ in range(attackers)]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(60)
    return {"sent": sent, "statuses": statuses}


def main() -> None:
    port, attackers, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    headers = json.loads(os.environ["FLOOD_HEADERS"])
    print(json.dumps(flood(port, headers, attackers, seconds)))


if __name__ == "__main__":
    main()
