"""Agent script of the escape suite: every attempt to leave or weaken the sandbox, one JSON line each.

Run inside an agent container with the standard library only. Each probe prints
`{"probe": name, "escaped": bool, "failure": "<errno name or what stopped it>", "detail": "..."}`;
the test asserts the concrete failure of every probe.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import stat
import subprocess
from collections.abc import Callable

LIBC = ctypes.CDLL(None, use_errno=True)
SYS_INIT_MODULE = 175  # x86_64
PTRACE_ATTACH = 16
IPT_SO_SET_REPLACE = 64


def _errno_name(code: int) -> str:
    return errno.errorcode.get(code, str(code))


def _libc(call: Callable[[], int]) -> str | None:
    """The errno name when a libc call fails, None when it succeeds."""
    ctypes.set_errno(0)
    if call() == -1:
        return _errno_name(ctypes.get_errno())
    return None


def docker_socket() -> tuple[bool, str, str]:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect("/var/run/docker.sock")
    except OSError as exc:
        return False, _errno_name(exc.errno or 0), "unix socket"
    return True, "", "connected to the Docker socket"


def docker_api_tcp() -> tuple[bool, str, str]:
    with open("/proc/net/route") as routes:
        gateway = routes.read().splitlines()[1:]
    hosts = {"172.17.0.1", "host.docker.internal"}
    for line in gateway:
        fields = line.split()
        if fields[1] == "00000000" and fields[2] != "00000000":
            hosts.add(socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little")))
    for host in sorted(hosts):
        for port in (2375, 2376):
            try:
                socket.create_connection((host, port), timeout=1).close()
            except OSError:
                continue
            return True, "", f"reached {host}:{port}"
    return False, "unreachable", ",".join(sorted(hosts))


def mount_proc() -> tuple[bool, str, str]:
    os.makedirs("/tmp/proc2", exist_ok=True)
    failure = _libc(lambda: LIBC.mount(b"proc", b"/tmp/proc2", b"proc", 0, None))
    return failure is None, failure or "", "mount -t proc"


def remount_sysfs_writable() -> tuple[bool, str, str]:
    ms_remount = 32
    failure = _libc(lambda: LIBC.mount(b"sysfs", b"/sys", b"sysfs", ms_remount, None))
    return failure is None, failure or "", "mount -o remount,rw /sys"


def write_proc_sys() -> tuple[bool, str, str]:
    try:
        with open("/proc/sys/kernel/hostname", "w") as handle:
            handle.write("escaped")
    except OSError as exc:
        return False, _errno_name(exc.errno or 0), "/proc/sys/kernel/hostname"
    return True, "", "wrote /proc/sys"


def load_kernel_module() -> tuple[bool, str, str]:
    image = ctypes.create_string_buffer(b"\0" * 64)
    failure = _libc(lambda: LIBC.syscall(SYS_INIT_MODULE, image, 64, b""))
    return failure is None, failure or "", "init_module"


def mknod_block_device() -> tuple[bool, str, str]:
    """A node for the host's first disk, then a read of it: gVisor lets the node exist in its own file
    system, but it leads to no device (ENXIO); runc refuses the node itself (no MKNOD)."""
    try:
        os.mknod("/tmp/sda", stat.S_IFBLK | 0o600, os.makedev(8, 0))
        descriptor = os.open("/tmp/sda", os.O_RDONLY)
        data = os.read(descriptor, 512)
    except OSError as exc:
        return False, _errno_name(exc.errno or 0), "mknod b 8 0, then read it"
    return True, "", f"read {len(data)} bytes of the host's disk"


def change_iptables() -> tuple[bool, str, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IPT_SO_SET_REPLACE, b"\0" * 128)
    except OSError as exc:
        return False, _errno_name(exc.errno or 0), "IPT_SO_SET_REPLACE"
    finally:
        sock.close()
    if _under_gvisor():
        # gVisor answers the call itself: its sentry holds no NET_ADMIN on the host, so at most the
        # sandbox's own (unused, with --network=host) netstack table changed.
        return False, "gVisor netstack", "accepted by the sandbox kernel, not the host's"
    return True, "", "replaced an iptables table"


def _under_gvisor() -> bool:
    done = subprocess.run(["dmesg"], capture_output=True, text=True)
    return "gVisor" in done.stdout


def raw_socket() -> tuple[bool, str, str]:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    except OSError as exc:
        return False, _errno_name(exc.errno or 0), "SOCK_RAW"
    return True, "", "opened a raw socket"


def setuid_binary() -> tuple[bool, str, str]:
    """`rootcat` is a setuid-root copy of cat baked by setup; no-new-privileges must ignore the bit."""
    done = subprocess.run(["/usr/local/bin/rootcat", "/root/flag"], capture_output=True, text=True)
    if done.returncode == 0:
        return True, "", f"read /root/flag: {done.stdout.strip()}"
    return False, "EACCES" if "Permission denied" in done.stderr else done.stderr.strip(), "rootcat"


def setuid_syscall() -> tuple[bool, str, str]:
    try:
        os.setuid(0)
    except OSError as exc:
        return False, _errno_name(exc.errno or 0), "setuid(0)"
    return True, "", f"uid {os.getuid()}"


def ptrace_init() -> tuple[bool, str, str]:
    failure = _libc(lambda: LIBC.ptrace(PTRACE_ATTACH, 1, None, None))
    return failure is None, failure or "", "ptrace(ATTACH, 1)"


def write_etc_passwd() -> tuple[bool, str, str]:
    try:
        with open("/etc/passwd", "a") as handle:
            handle.write("escaped::0:0::/:/bin/sh\n")
    except OSError as exc:
        return False, _errno_name(exc.errno or 0), "/etc/passwd"
    return True, "", "appended to /etc/passwd"


PROBES = [
    docker_socket,
    docker_api_tcp,
    mount_proc,
    remount_sysfs_writable,
    write_proc_sys,
    load_kernel_module,
    mknod_block_device,
    change_iptables,
    raw_socket,
    setuid_binary,
    setuid_syscall,
    ptrace_init,
    write_etc_passwd,
]

if __name__ == "__main__":
    print(json.dumps({"probe": "whoami", "escaped": False, "failure": "", "detail": str(os.getuid())}))
    for probe in PROBES:
        try:
            escaped, failure, detail = probe()
        except Exception as exc:  # a probe that crashes has not escaped, but says why
            escaped, failure, detail = False, type(exc).__name__, str(exc)
        print(json.dumps({"probe": probe.__name__, "escaped": escaped, "failure": failure, "detail": detail}))
