"""Trace ingest benchmark: prints figures for this machine, asserts nothing. No Docker needed.

    python bench/ingest.py [--store sqlite|URL] [--batches N] [--batch-size N] [--clients 1,4]

Events per second through `POST /v1/traces` (a real uvicorn socket, API key auth, rate limits raised
out of the way): `--batches` batches of `--batch-size` events from each of 1 and 4 concurrent clients,
and the time `GET /v1/traces` takes to page through everything stored (500 a page).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import httpx

from polarity_keystone.server import ServerSettings, create_api_key, serve_in_thread
from polarity_keystone.store import open_store


def batch(client: int, number: int, size: int) -> list[dict[str, object]]:
    return [
        {
            "ts": f"2026-01-01T00:00:{i % 60:02d}Z",
            "event_type": "tool_call" if i % 2 else "llm_call",
            "tool": f"tool.{i % 7}",
            "phase": "end",
            "status": "ok",
            "duration_ms": i % 50,
            "id": f"c{client}-b{number}-e{i}",
            "cost": {"input_tokens": 100, "output_tokens": 20, "model": "gpt-4o"},
        }
        for i in range(size)
    ]


def ingest(url: str, key: str, clients: int, batches: int, size: int) -> float:
    """Events per second over all clients."""

    def client(index: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            for number in range(batches):
                http.post("/v1/traces", json={"events": batch(index, number, size)}).raise_for_status()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients * batches * size / (time.perf_counter() - started)


def page_through(url: str, key: str) -> tuple[int, float]:
    count, started = 0, time.perf_counter()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        params: dict[str, str | int] = {"limit": 500}
        while True:
            answer = http.get("/v1/traces", params=params)
            answer.raise_for_status()
            count += len(answer.json())
            cursor = answer.headers.get("X-Next-Cursor")
            if cursor is None:
                return count, time.perf_counter() - started
            params["cursor"] = cursor


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", default="sqlite", help="sqlite (a temp file) or a postgres:// URL")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--clients", default="1,4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store_url = f"sqlite://{Path(folder) / 'bench.db'}" if args.store == "sqlite" else args.store
        store = open_store(store_url)
        key, _ = create_api_key(store, f"bench-{time.time_ns()}")
        store.close()
        settings = ServerSettings(store_url=store_url, read_rate=1e6, write_rate=1e6)
        with serve_in_thread(settings) as server:
            print(f"keystone trace ingest benchmark, store {args.store}, server {server.url}")
            for clients in (int(c) for c in args.clients.split(",")):
                rate = ingest(server.url, key, clients, args.batches, args.batch_size)
                print(
                    f"  POST /v1/traces, {clients} client(s), batches of {args.batch_size}: "
                    f"{rate:8.0f} events/s"
                )
            count, seconds = page_through(server.url, key)
            print(f"  GET /v1/traces, every page of 500: {count} events in {seconds:.2f} s")


if __name__ == "__main__":
    main()
