"""Spec bundle upload benchmark: prints figures for this machine, asserts nothing. No Docker needed.

    python bench/bundle_upload.py [--files 50] [--file-mb 1]

Starts the server on a real socket (SQLite, a temporary data directory) and uploads a spec whose agent
directory holds `--files` files of `--file-mb` MB of random bytes through `ks.specs.create(path=…)`:
first upload, unchanged re-upload, re-upload with one file changed. Beside it, what a user would
otherwise do: `tar czf` the directory and upload the archive whole, each time (one PUT of the archive
as a blob, the server's body limit raised to hold it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from polarity_keystone import Keystone
from polarity_keystone.server import ServerSettings, create_api_key, serve_in_thread
from polarity_keystone.store import open_store

SPEC = """\
version: 1
id: bench-bundle
base: "debian:bookworm-slim"
task: {prompt: "run the agent"}
agent: {type: cli, command: "sh /opt/agent/run.sh", path: agent}
invariants:
  ok: {check: {type: file_exists, path: out.txt}}
"""


def timed(action: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    sent = action()
    return sent, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--file-mb", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        project = root / "project"
        agent = project / "agent"
        agent.mkdir(parents=True)
        (agent / "run.sh").write_text("echo hi > out.txt\n")
        for index in range(args.files):
            (agent / f"blob-{index:03}.bin").write_bytes(os.urandom(args.file_mb << 20))
        spec_file = project / "spec.yaml"
        spec_file.write_text(SPEC)
        store_url = f"sqlite://{root / 'ks.db'}"
        store = open_store(store_url)
        key = create_api_key(store, "bench")[0]
        store.close()
        settings = ServerSettings(store_url=store_url, data_dir=root / "data", max_body_bytes=1 << 30)
        with serve_in_thread(settings) as running, Keystone(api_key=key, base_url=running.url) as ks:

            def upload_bundle() -> int:
                ks.specs.create(path=spec_file)
                assert ks.specs.last_bundle is not None
                return ks.specs.last_bundle.bytes_sent

            def upload_tarball() -> int:
                archive = root / "agent.tar.gz"
                subprocess.run(["tar", "czf", str(archive), "-C", str(project), "."], check=True)
                content = archive.read_bytes()
                digest = hashlib.sha256(content).hexdigest()
                response = httpx.put(
                    f"{running.url}/v1/blobs/{digest}",
                    content=content,
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"},
                    timeout=300,
                )
                response.raise_for_status()
                return len(content)

            rows = []
            for step in ("first upload", "unchanged re-upload", "one file changed"):
                if step == "one file changed":
                    (agent / "blob-000.bin").write_bytes(os.urandom(args.file_mb << 20))
                bundle, tarball = timed(upload_bundle), timed(upload_tarball)
                rows.append((step, bundle, tarball))
    total = args.files * args.file_mb
    print(f"agent directory: {args.files} files of {args.file_mb} MB of random bytes ({total} MB)")
    print(f"{'':22} {'bundle (ks.specs.create)':>28} {'tar czf + one upload':>28}")
    for step, (bundle_bytes, bundle_s), (tar_bytes, tar_s) in rows:
        print(
            f"{step:22} {bundle_bytes / 1e6:>10.2f} MB {bundle_s:>8.2f} s     "
            f"{tar_bytes / 1e6:>10.2f} MB {tar_s:>8.2f} s"
        )


if __name__ == "__main__":
    main()
