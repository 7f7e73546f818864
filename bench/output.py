"""Agent-output benchmark: prints figures for this machine, asserts nothing.

    python bench/output.py [--sizes 20,200] [--before-sizes 20,40]

An agent command prints N MB to stdout in a fresh sandbox. For each size, in a child process of its own
(so its peak RSS is its own), the time and the peak RSS of:
  keystone    Sandbox.exec with the agent's output limit: streamed into a 1 MiB head+tail buffer;
  before      docker-py's `exec_run(demux=True)`, what Keystone did until issue 9 (quadratic: only the
              --before-sizes, 200 MB runs for minutes);
  docker CLI  `docker exec … > /dev/null`, the tool a user would otherwise pick (its RSS is the CLI's).
Each child removes its sandbox; the parent reaps whatever a killed child left.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from polarity_keystone.engine import AGENT_OUTPUT_LIMIT
from polarity_keystone.sandbox import DockerBackend, DockerSandbox, ImageResolver, SandboxPlan

CASES = ("keystone", "before", "docker CLI")


def _command(megabytes: int) -> str:
    return f"head -c {megabytes}000000 /dev/zero | tr '\\0' x"


def _peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kB on Linux


def _measure(case: str, megabytes: int) -> dict[str, float]:
    """Boot a sandbox, run the case once, and report seconds, bytes read and peak RSS (MB)."""
    backend = DockerBackend()
    image = ImageResolver(backend.client).local("base").ref
    sandbox: DockerSandbox = backend.create(
        SandboxPlan(spec_id="bench-output", run_id="bench-output", image=image)
    )
    try:
        assert sandbox.agent is not None
        before_mb = _peak_mb()
        started = time.monotonic()
        if case == "keystone":
            result = sandbox.exec(_command(megabytes), output_limit=AGENT_OUTPUT_LIMIT)
            read = result.stdout_bytes
            peak = _peak_mb()
        elif case == "before":
            output = sandbox.agent.exec_run(["sh", "-c", _command(megabytes)], demux=True).output
            read = len(output[0] or b"")
            peak = _peak_mb()
        else:
            with open("/dev/null", "wb") as null:
                subprocess.run(
                    ["docker", "exec", sandbox.agent.id, "sh", "-c", _command(megabytes)],
                    stdout=null,
                    check=True,
                )
            read = megabytes * 1_000_000
            peak = _peak_mb(resource.RUSAGE_CHILDREN)
        seconds = time.monotonic() - started
    finally:
        sandbox.destroy()
        backend.client.close()
    return {"seconds": seconds, "bytes": read, "peak_mb": peak, "before_mb": before_mb}


def _sizes(text: str) -> set[int]:
    return {int(size) for size in text.split(",") if size}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="20,200", help="MB of output (default: 20,200)")
    parser.add_argument(
        "--before-sizes", default="20,40", help="MB for the quadratic old path (default: 20,40)"
    )
    parser.add_argument("--child", nargs=2, metavar=("CASE", "MB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child[0], int(args.child[1]))))
        return
    sizes, before = _sizes(args.sizes), _sizes(args.before_sizes)
    runs = [
        (megabytes, case)
        for megabytes in sorted(sizes | before)
        for case in CASES
        if megabytes in (before if case == "before" else sizes)
    ]
    print(f"agent output benchmark: Keystone keeps {AGENT_OUTPUT_LIMIT // 1024} KiB per stream (head+tail)")
    print(f"  {'case':<11} {'MB':>5} {'seconds':>9} {'MB/s':>8} {'peak RSS':>10} {'RSS before':>11}")
    try:
        for megabytes, case in runs:
            child = subprocess.run(
                [sys.executable, __file__, "--child", case, str(megabytes)], capture_output=True, text=True
            )
            if child.returncode != 0:
                print(f"  {case:<11} {megabytes:>5} failed: {child.stderr.strip().splitlines()[-1:]}")
                continue
            figures = json.loads(child.stdout)
            shown = "(CLI)" if case == "docker CLI" else f"{figures['before_mb']:>7.0f} MB"
            print(
                f"  {case:<11} {megabytes:>5} {figures['seconds']:>8.2f}s {megabytes / figures['seconds']:>8.1f} "
                f"{figures['peak_mb']:>7.0f} MB {shown:>11}"
            )
    finally:
        DockerBackend().reap()


if __name__ == "__main__":
    main()
