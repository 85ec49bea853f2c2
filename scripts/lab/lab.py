#!/usr/bin/env python3
"""mxray capture lab: list scenarios, or run one inside a private netns.

  lab.py list                       scenario names, in run order
  lab.py run NAME... --pcaps DIR --work DIR --certs DIR [--exim PATH]
                                    re-executes itself under
                                    `unshare --net --uts` (needs root)

An offload/ scenario (veth=True) adds two namespaces of its own joined by veth
pairs and is recorded twice, offloads off and on (docs/lab.md, the offload
path).

--exim is the exim4 binary unpacked from Debian's exim4-daemon-light (only
smtp/vrfy-enabled uses it); by default DIR/../exim/usr/sbin/exim4 beside
--certs, where run-all unpacks it.
"""
import argparse
import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "scenarios"))

import driver                          # noqa: E402
import scen_demo                       # noqa: E402,F401  (registers)
import scen_smtp                       # noqa: E402,F401
import scen_pop3                       # noqa: E402,F401
import scen_imap                       # noqa: E402,F401
import scen_offload                    # noqa: E402,F401
import scen_proxy                      # noqa: E402,F401
import scen_tunnel                     # noqa: E402,F401
import scen_lmtp                       # noqa: E402,F401
import scen_keylog                     # noqa: E402,F401
import scen_attacks                    # noqa: E402,F401
import scen_journey                    # noqa: E402,F401
import scen_bounce                     # noqa: E402,F401
import scen_tlsposture                 # noqa: E402,F401
import scen_bench                      # noqa: E402,F401  (bench/: scripts/bench.py's)


def in_private_netns():
    """True when the only interface is lo (a namespace we created)."""
    return [n for _, n in socket.if_nameindex()] == ["lo"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["list", "run"])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--pcaps", default=os.path.join(HERE, "..", "..", "pcaps"))
    ap.add_argument("--work")
    ap.add_argument("--certs")
    ap.add_argument("--exim")
    ap.add_argument("--inside", action="store_true",
                    help=argparse.SUPPRESS)   # set by the re-exec under unshare
    a = ap.parse_args()
    if a.cmd == "list":
        for n in driver.ORDER:
            print(n)
        return 0
    if not a.inside:
        # Re-run ourselves in a new network and UTS namespace.
        os.execvp("unshare", ["unshare", "--net", "--uts", "--", sys.executable,
                              os.path.abspath(__file__)] + sys.argv[1:] + ["--inside"])
    if not in_private_netns():
        print("lab.py run: not in a private network namespace", file=sys.stderr)
        return 2
    subprocess.run(["hostname", "mx.lab.test"], check=True)
    exim = a.exim or os.path.join(os.path.dirname(os.path.abspath(a.certs)),
                                  "exim", "usr", "sbin", "exim4")
    for n in a.names:
        driver.run(n, os.path.abspath(a.pcaps), os.path.join(a.work, n.replace("/", "_")),
                   a.certs, exim)
    return 0


if __name__ == "__main__":
    sys.exit(main())
