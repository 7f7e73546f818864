"""API benchmark: prints figures for this machine, asserts nothing. No Docker needed.

    python bench/api.py [--store sqlite|URL] [--seconds S] [--clients 1,8] [--connections 32] [--rounds R]
                        [--events N]

1. read throughput of `GET /v1/experiments/{id}` for a finished experiment (3 scenarios of 10 replicas,
   its results stored as a run leaves them), through a real uvicorn socket with API key auth (rate limits
   raised out of the way), side by side with a bare FastAPI app (the same uvicorn, no auth, no store)
   serving the very JSON our endpoint answered for that experiment, and the ratio of the two. The load
   comes from 1 and 8 httpx clients (keep-alive connections, threads of this process), and from `wrk`
   with `--connections` connections when `wrk` is installed (a process of its own). The servers take
   turns, `--rounds` times each, and the median round of each is shown. There are two bare apps: one
   whose route is a plain `def` (run in a worker thread, as our route's store reads are) and one whose
   route is `async def` (on the event loop, as our answer from memory for a finished experiment read a
   moment ago is); the ratio to each is shown;
2. SSE latency: the time from publishing an experiment event on the server to a client following
   `/v1/experiments/{id}/stream` reading it, over `--events` events.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Response

from polarity_keystone.engine import aggregate_run, aggregate_scenario
from polarity_keystone.results import InvariantResult, ReplicaResult, Reproducer
from polarity_keystone.server import ServerSettings, create_api_key, serve_in_thread
from polarity_keystone.server._events import experiment_stream
from polarity_keystone.store import ExperimentRecord, Store, open_store

EXPERIMENT = "exp_bench_api"
SCENARIOS = 3
REPLICAS = 10
PATH = f"/v1/experiments/{EXPERIMENT}"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def store_finished_experiment(store: Store) -> None:
    """A completed experiment whose results the engine's own aggregation built, as a run stores them."""

    def replica(index: int, scenario_id: str) -> ReplicaResult:
        passed = index % 4 != 3
        return ReplicaResult(
            replica=index,
            seed=1000 + index,
            status="pass" if passed else "fail",
            wall_ms=1200 + 37 * index,
            invariants=[
                InvariantResult(name="task_done", passed=passed, gate=True),
                InvariantResult(name="tidy_output", passed=True),
            ],
            reproducer=Reproducer(
                spec_file="spec.yaml",
                seed=1000 + index,
                scenario_id=scenario_id,
                command=f"ks replay spec.yaml --seed {1000 + index} --scenario {scenario_id}",
            ),
        )

    scenarios = [
        aggregate_scenario("bench-api", f"s{n}", {"n": n}, [replica(i, f"s{n}") for i in range(REPLICAS)])
        for n in range(SCENARIOS)
    ]
    results = aggregate_run(
        spec_id="bench-api",
        experiment_id=EXPERIMENT,
        seed=1,
        scenarios=scenarios,
        fingerprint={"spec_id": "bench-api", "spec_sha256": "a" * 64, "service_images": {}},
        spec_file="spec.yaml",
        k=REPLICAS,
    )
    now = datetime.now(UTC)
    store.add_experiment(
        ExperimentRecord(
            id=EXPERIMENT,
            name="bench",
            spec_id="bench-api",
            spec_version=1,
            status="completed",
            created_at=now,
            started_at=now,
            finished_at=now,
            owner="key_bench",
            options={
                "replicas": REPLICAS,
                "scenarios": [{"scenario_id": s.scenario_id, "parameters": s.parameters} for s in scenarios],
            },
            progress={"total": SCENARIOS * REPLICAS, "done": SCENARIOS * REPLICAS},
            results=results.model_dump(mode="json"),
        )
    )


@dataclass
class Figures:
    requests_per_s: float
    p50_ms: float | None = None
    p95_ms: float | None = None

    def __str__(self) -> str:
        latency = f"  p50 {self.p50_ms:6.2f} ms  p95 {self.p95_ms:6.2f} ms" if self.p50_ms is not None else ""
        return f"{self.requests_per_s:7.0f} req/s{latency}"


def httpx_load(url: str, headers: dict[str, str], clients: int, seconds: float) -> Figures:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        mine = []
        with httpx.Client(base_url=url, headers=headers) as http:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                http.get(PATH).raise_for_status()
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Figures(len(latencies) / seconds, statistics.median(latencies) * 1000, pct(latencies, 95) * 1000)


_WRK_RATE = re.compile(r"Requests/sec:\s+([0-9.]+)")
_WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def wrk_load(wrk: str, url: str, headers: dict[str, str], connections: int, seconds: float) -> Figures:
    """`wrk` in its own process (2 threads), so the load generator does not share this process's GIL."""
    command = [wrk, "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url + PATH], capture_output=True, text=True, check=True).stdout
    failed = _WRK_ERRORS.search(output)
    if failed:
        raise RuntimeError(f"wrk got {failed[1]} error responses:\n{output}")
    rate = _WRK_RATE.search(output)
    if rate is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return Figures(float(rate[1]))


@contextmanager
def bare_fastapi(document: bytes, *, on_event_loop: bool) -> Iterator[str]:
    """A floor to compare with: FastAPI on the same uvicorn, answering the stored bytes of our answer
    from an `async def` route (`on_event_loop`) or a plain `def` one."""
    app = FastAPI()

    def answer() -> Response:
        return Response(document, media_type="application/json")

    async def answer_on_event_loop() -> Response:
        return answer()

    app.get(PATH)(answer_on_event_loop if on_event_loop else answer)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as serve_in_thread does
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def side_by_side(
    label: str,
    ours: str,
    floors: dict[str, str],
    auth: dict[str, str],
    load: Callable[[str, dict[str, str]], Figures],
    rounds: int,
) -> None:
    """Alternates the servers `rounds` times and shows each one's median round (on a shared machine the
    load of the moment moves all alike), and our ratio to each of the `floors` (name: url)."""
    mine: list[Figures] = []
    bare: dict[str, list[Figures]] = {name: [] for name in floors}
    for _ in range(rounds):
        mine.append(load(ours, auth))
        for name, url in floors.items():
            bare[name].append(load(url, {}))
    middle = (rounds - 1) // 2
    ours_median = sorted(mine, key=lambda figures: figures.requests_per_s)[middle]
    print(f"  {label:<22} keystone {ours_median}")
    for name, figures in bare.items():
        bare_median = sorted(figures, key=lambda each: each.requests_per_s)[middle]
        ratio = ours_median.requests_per_s / bare_median.requests_per_s
        print(f"  {'':<22} bare FastAPI, {name:<10} {bare_median}   ratio {ratio:.2f}x")


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
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two servers per load")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store_url = f"sqlite://{Path(folder) / 'bench.db'}" if args.store == "sqlite" else args.store
        store = open_store(store_url)
        key, _ = create_api_key(store, "bench")
        store_finished_experiment(store)
        store.close()
        auth = {"Authorization": f"Bearer {key}"}
        settings = ServerSettings(store_url=store_url, read_rate=1e6, write_rate=1e6)
        with serve_in_thread(settings) as server:
            answer = httpx.get(server.url + PATH, headers=auth)
            answer.raise_for_status()
            print(
                f"keystone API benchmark, store {args.store}: GET {PATH} "
                f"(a finished experiment, {SCENARIOS}x{REPLICAS} replicas, {len(answer.content):,} bytes)"
            )
            with (
                bare_fastapi(answer.content, on_event_loop=False) as bare_def,
                bare_fastapi(answer.content, on_event_loop=True) as bare_async,
            ):
                floors = {"def": bare_def, "async def": bare_async}
                for clients in (int(c) for c in args.clients.split(",")):
                    side_by_side(
                        f"httpx, {clients} client(s)",
                        server.url,
                        floors,
                        auth,
                        partial(httpx_load, clients=clients, seconds=args.seconds),
                        args.rounds,
                    )
                wrk = shutil.which("wrk")
                if wrk:
                    side_by_side(
                        f"wrk, {args.connections} connections",
                        server.url,
                        floors,
                        auth,
                        lambda url, headers: wrk_load(wrk, url, headers, args.connections, args.seconds),
                        args.rounds,
                    )
                else:
                    print("  wrk: not installed (apt-get install wrk), httpx clients only")
            seen = sse_latency(server.url, key, EXPERIMENT, server.app, args.events)
            if seen:
                print(
                    f"  SSE event latency ({len(seen)}/{args.events} events): p50 {statistics.median(seen) * 1000:.2f} ms"
                    f"  p95 {pct(seen, 95) * 1000:.2f} ms  max {max(seen) * 1000:.2f} ms"
                )
            else:
                print("  SSE: no event arrived")


if __name__ == "__main__":
    main()
