"""API benchmark: prints figures for this machine, asserts nothing. No Docker needed.

    python bench/api.py [--store sqlite|URL] [--seconds S] [--clients 1,8] [--events N]

1. read throughput: `GET /v1/experiments/{id}` from 1 and 8 concurrent clients (keep-alive connections,
   a real uvicorn socket, API key auth, rate limits raised out of the way), for `--seconds` each;
2. SSE latency: the time from publishing an experiment event on the server to a client following
   `/v1/experiments/{id}/stream` reading it, over `--events` events.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from polarity_keystone.server import ServerSettings, create_api_key, serve_in_thread
from polarity_keystone.server._events import experiment_stream
from polarity_keystone.store import open_store

SPEC = """
version: 1
id: bench-api
base: ubuntu:24.04
task: {prompt: "nothing"}
agent: {type: cli, command: "true"}
invariants:
  ok: {check: {type: command_exit, command: "true"}}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def read_throughput(
    url: str, key: str, experiment: str, clients: int, seconds: float
) -> tuple[int, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        mine = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                http.get(f"/v1/experiments/{experiment}").raise_for_status()
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies), latencies


def sse_latency(url: str, key: str, experiment: str, app: Any, events: int) -> list[float]:
    """Each event carries its publish time; the client subtracts it from the time it read the event."""
    bus = app.state.keystone.bus
    stream = experiment_stream(experiment)
    seen: list[float] = []
    connected = threading.Event()

    def follow() -> None:
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        with (
            httpx.Client(base_url=url, headers=headers, timeout=30) as http,
            http.stream("GET", f"/v1/experiments/{experiment}/stream") as response,
        ):
            connected.set()
            for line in response.iter_lines():
                if line.startswith("data:"):
                    data = json.loads(line[5:])
                    if "sent" in data:
                        seen.append(time.perf_counter() - data["sent"])
                        if len(seen) == events:
                            return

    reader = threading.Thread(target=follow)
    reader.start()
    connected.wait(10)
    time.sleep(0.3)  # the stream is subscribed once its first (empty) read is pending
    for _ in range(events):
        bus.publish(stream, "progress", {"sent": time.perf_counter()})
        time.sleep(0.01)
    reader.join(30)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", default="sqlite", help="sqlite (a temp file) or a postgres:// URL")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store_url = f"sqlite://{Path(folder) / 'bench.db'}" if args.store == "sqlite" else args.store
        store = open_store(store_url)
        key, _ = create_api_key(store, "bench")
        store.close()
        settings = ServerSettings(store_url=store_url, read_rate=1e6, write_rate=1e6)
        with serve_in_thread(settings) as server:
            http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
            http.post(
                "/v1/specs", content=SPEC, headers={"Content-Type": "application/x-yaml"}
            ).raise_for_status()
            experiment = http.post("/v1/experiments", json={"name": "bench", "spec_id": "bench-api"}).json()[
                "id"
            ]
            http.close()
            print(f"keystone API benchmark, store {args.store}, server {server.url}")
            for clients in (int(c) for c in args.clients.split(",")):
                count, latencies = read_throughput(server.url, key, experiment, clients, args.seconds)
                print(
                    f"  GET experiment, {clients} client(s): {count / args.seconds:7.0f} req/s   "
                    f"p50 {statistics.median(latencies) * 1000:.2f} ms  p95 {pct(latencies, 95) * 1000:.2f} ms"
                )
            seen = sse_latency(server.url, key, experiment, server.app, args.events)
            if seen:
                print(
                    f"  SSE event latency ({len(seen)}/{args.events} events): p50 {statistics.median(seen) * 1000:.2f} ms"
                    f"  p95 {pct(seen, 95) * 1000:.2f} ms  max {max(seen) * 1000:.2f} ms"
                )
            else:
                print("  SSE: no event arrived")


if __name__ == "__main__":
    main()
