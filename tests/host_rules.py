"""What the host's firewall lets sandboxes reach, read as the tests' evidence."""

from __future__ import annotations

import re
import shutil
import subprocess


def ports_open_to_sandboxes() -> set[int]:
    """The ports the host rules accept from sandbox bridges, in whichever iptables holds them."""
    rules = "".join(
        subprocess.run([ipt, "-S", "INPUT"], capture_output=True, text=True).stdout
        for ipt in ("iptables-nft", "iptables-legacy")
        if shutil.which(ipt)
    )
    return {int(port) for port in re.findall(r"-i ks-\+ -p tcp -m tcp --dport (\d+) ", rules)}
