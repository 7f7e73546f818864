"""Trace ingest benchmark: prints figures for this machine, asserts nothing.

    python bench/ingest.py [--store sqlite,postgres|URL,...] [--batches N] [--batch-size N] [--clients 1,4]

Events per second through `POST /v1/traces` (a real uvicorn socket, API key auth, rate limits raised
out of the way): `--batches` batches of `--batch-size` events from each of 1 and 4 concurrent clients,
and the time `GET /v1/traces` takes to page through everything stored (500 a page), for each store in
one table. `sqlite` is a temp file; `postgres` starts Keystone's local Postgres image in Docker (as the
tests' Postgres store does) and removes it afterwards; a `postgresql://` URL uses that server instead.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from docker.models.containers import Container

from polarity_keystone.sandbox import DockerBackend, ImageResolver
from polarity_keystone.sandbox import _labels as labels
from polarity_keystone.server import ServerSettings, create_api_key, serve_in_thread
from polarity_keystone.store import open_store

POSTGRES_READY_TIMEOUT_S = 60


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


@contextmanager
def local_postgres() -> Iterator[str]:
    """Keystone's local Postgres image on a random port of 127.0.0.1, labelled like a sandbox of this
    process (its reaper removes it should the benchmark die), removed when done; yields its URL."""
    backend = DockerBackend()
    backend.hold_lease()
    password, name = secrets.token_hex(8), f"bench-{secrets.token_hex(4)}"
    container = backend.client.containers.run(
        ImageResolver(backend.client).local("postgres").ref,
        detach=True,
        environment={"POSTGRES_USER": "keystone", "POSTGRES_PASSWORD": password, "POSTGRES_DB": "keystone"},
        ports={"5432/tcp": ("127.0.0.1", None)},
        labels={
            **labels.sandbox_labels(name, f"bench-{name}", "", 3600, backend.owner),
            labels.ROLE: "bench-store",
        },
    )
    try:
        yield _accepting_url(container, password)
    finally:
        container.remove(force=True, v=True)


def _accepting_url(container: Container, password: str) -> str:
    """The container's URL once a real connection succeeds (its ready marker comes before TCP)."""
    deadline = time.monotonic() + POSTGRES_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        container.reload()
        bindings = container.ports.get("5432/tcp")
        if bindings:
            url = f"postgresql://keystone:{password}@127.0.0.1:{bindings[0]['HostPort']}/keystone"
            try:
                psycopg.connect(url, connect_timeout=2).close()
                return url
            except psycopg.OperationalError:
                pass
        time.sleep(0.2)
    raise RuntimeError(
        f"the benchmark's Postgres did not accept connections within {POSTGRES_READY_TIMEOUT_S} s"
    )


@contextmanager
def store_at(store: str) -> Iterator[str]:
    """The store URL for `sqlite`, `postgres` or a URL given as it is."""
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite://{Path(folder) / 'bench.db'}"
    elif store == "postgres":
        with local_postgres() as url:
            yield url
    else:
        yield store


def measure(store_url: str, clients: list[int], batches: int, size: int) -> list[str]:
    """One store's column: events/s for each client count, then the paging time."""
    store = open_store(store_url)
    key, _ = create_api_key(store, f"bench-{time.time_ns()}")
    store.close()
    settings = ServerSettings(store_url=store_url, read_rate=1e6, write_rate=1e6)
    with serve_in_thread(settings) as server:
        column = [f"{ingest(server.url, key, count, batches, size):,.0f} events/s" for count in clients]
        count, seconds = page_through(server.url, key)
        return [*column, f"{count:,} in {seconds:.2f} s"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--store",
        default="sqlite,postgres",
        help="comma-separated: sqlite (a temp file), postgres (a local container) or postgresql:// URLs",
    )
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--clients", default="1,4")
    args = parser.parse_args()
    stores = args.store.split(",")
    clients = [int(count) for count in args.clients.split(",")]
    columns = []
    for store in stores:
        with store_at(store) as url:
            columns.append(measure(url, clients, args.batches, args.batch_size))
    rows = [f"POST /v1/traces, {count} client(s), batches of {args.batch_size}" for count in clients]
    rows.append("GET /v1/traces, every page of 500")
    heads = ["sqlite" if s == "sqlite" else "postgres" if s.startswith("postgres") else s for s in stores]
    width = max(map(len, rows))
    print("keystone trace ingest benchmark")
    print(f"  {'':{width}}" + "".join(f"  {head:>20}" for head in heads))
    for index, row in enumerate(rows):
        print(f"  {row:{width}}" + "".join(f"  {column[index]:>20}" for column in columns))


if __name__ == "__main__":
    main()
