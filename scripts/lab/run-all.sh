#!/bin/bash
# mxray capture lab: rebuild every capture in pcaps/ from real postfix and
# dovecot sessions, each scenario in its own network namespace.
#
#   scripts/lab/run-all.sh [SCENARIO...]     (root; Debian)
#
# Installs what it needs (idempotent), makes a CA and server certificate in a
# private temp directory, then runs each scenario via lab.py, which re-executes
# itself under `unshare --net --uts`.  Only loopback inside those namespaces
# is used, except by the offload/ scenarios (issue 25), which add veth pairs
# to two more namespaces of their own and record each scenario with offloads
# off and on (docs/lab.md, the offload path).  Set LAB_KEEP=1 to keep the work directory, LAB_PCAPS=DIR to write
# the captures somewhere other than pcaps/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "run-all: needs root (namespaces, postfix, dovecot, tcpdump)" >&2
	exit 2
fi

need_pkgs=(postfix dovecot-imapd dovecot-pop3d dovecot-lmtpd swaks tcpdump openssl python3
	tcpreplay tshark ethtool iproute2 util-linux libidn12 haproxy dante-server tinyproxy)
missing=()
for p in "${need_pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "run-all: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian packages may have started system daemons; the lab does not use
# them and never touches /etc/postfix or /etc/dovecot.

py=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
# LAB_PCAPS: write captures elsewhere (check-truth uses it); default pcaps/.
pcaps=${LAB_PCAPS:-$repo/pcaps}
work=$(mktemp -d /tmp/mxlab.XXXXXX)
chmod 755 "$work"
child=
cleanup() {
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	# Any daemon a crashed scenario left behind: end it by its pid file.
	for f in "$work"/run/*/postfix*/spool/pid/master.pid \
		"$work"/run/*/dovecot/run/master.pid "$work"/run/*/exim/exim.pid; do
		[ -f "$f" ] || continue
		pid=$(tr -d ' \n' <"$f")
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
	done
	if [ -z "${LAB_KEEP:-}" ]; then rm -rf "$work"; else echo "run-all: kept $work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ $# -gt 0 ]; then
	scenarios=("$@")
else
	# bench/ is scripts/bench.py's workload (large, never in pcaps/): by name only
	mapfile -t scenarios < <("$py" "$here/lab.py" list | grep -v '^bench/')
fi

# exim for smtp/vrfy-enabled (the one real server here that answers VRFY
# and EXPN with real data): Debian's exim4-daemon-light conflicts with
# postfix, so its package is only fetched and unpacked into the work
# directory, never installed (its library libidn12 is installed above).
exim="$work/exim/usr/sbin/exim4"
if [ $# -eq 0 ] || printf '%s\n' "$@" | grep -qx 'smtp/vrfy-enabled'; then
	mkdir -p "$work/pkg"
	if (cd "$work/pkg" && apt-get download -qq exim4-daemon-light >/dev/null 2>&1); then
		dpkg-deb -x "$work"/pkg/exim4-daemon-light_*.deb "$work/exim"
	else
		echo "run-all: could not fetch exim4-daemon-light; smtp/vrfy-enabled will fail" >&2
	fi
fi

start=$(date +%s)
failed=()
for s in "${scenarios[@]}"; do
	"$py" "$here/lab.py" run "$s" --pcaps "$pcaps" --work "$work/run" \
		--certs "$work/certs" --exim "$exim" &
	child=$!
	if ! wait "$child"; then
		echo "run-all: scenario $s FAILED" >&2
		failed+=("$s")
	fi
	child=
done
# Impaired variants (seeded) of a few captures, for reassembly/resync tests.
if [ $# -eq 0 ]; then
	for src in smtp/attachment.pcap pop3/user-pass-retr.pcap imap/login-fetch.pcap; do
		[ -f "$pcaps/$src" ] && "$py" "$here/impair.py" "$pcaps/$src" "$pcaps/impaired" --seed 3 >/dev/null
	done
	# a loss repaired by a timeout (MX-NETWORK-SLOW-TRANSFER's capture)
	[ -f "$pcaps/smtp/attachment.pcap" ] &&
		"$py" "$here/impair.py" "$pcaps/smtp/attachment.pcap" "$pcaps/impaired" --seed 3 --kinds stall >/dev/null
fi
# Decrypted exports (pcaps/keylog/NAME-cleartext.pcap) of the STARTTLS keylog captures.
for src in keylog/smtp-starttls-tls13-aes256 keylog/imap-starttls-ecdhe-aes128gcm \
	keylog/pop3-stls-ecdhe-chacha20; do
	if printf '%s\n' "${scenarios[@]}" | grep -qx "$src" && [ -f "$pcaps/$src.pcap" ]; then
		"$py" "$here/decrypted-export.py" "$pcaps/$src.pcap" >/dev/null
	fi
done
echo "run-all: ${#scenarios[@]} scenarios in $(( $(date +%s) - start ))s, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
