#!/usr/bin/env bash
# setup.sh - installs the Debian packages mxray needs to build and test. Idempotent; quiet when all is there.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config          # the toolchain
  libpcap-dev libndpi-dev libjson-c-dev libssl-dev zlib1g-dev libzstd-dev liblzma-dev libbsd-dev libmagic-dev check   # libraries (pkg-config finds them; libbsd: red-black tree macros; libmagic: attachments' types)
  python3 python3-jsonschema                # test scripts; schema checks of the output
  tshark                                    # agreement tests against Wireshark's dissectors (editcap: cli.sh)
  zstd xz-utils                             # compressed captures made in tests/cli.sh
  valgrind                                  # memcheck of the corpus run
  clang libclang-rt-14-dev                  # libFuzzer targets (scripts/fuzz.sh)
  clang-format                              # the style check (scripts/check-format.sh)
  postfix dovecot-imapd dovecot-pop3d dovecot-lmtpd swaks haproxy # the lab's servers and client (tests/live.sh runs scenarios)
  libnet-ssleay-perl libio-socket-ssl-perl  # swaks's TLS (only Recommends, which are not installed)
  tcpdump tcpreplay openssl iproute2 ethtool  # the lab's capture, checksums, certificates, loopback
  dante-server tinyproxy                    # the lab's proxies (SOCKS, HTTP CONNECT) for the tunnel scenarios
  time                                      # /usr/bin/time: peak RSS in tests/adversarial.sh
  dpkg-dev groff-base man-db                # cpack's dpkg-shlibdeps; the man page rendered (tests/package.sh, manpage.py)
  libhiredis-dev redis-server redis-tools  # --redis (hiredis); tests/redis.py starts its own redis-server
  chromium chromium-driver python3-selenium # the HTML report, tested in a real browser
)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; the answer does not matter here.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
# postfix: no system mail set-up; the lab writes its own configurations.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
# The packages must not start system daemons: the lab starts its own, in its
# own network namespace. policy-rc.d (invoke-rc.d's hook) says no while we
# install, and is removed after, if we put it there.
policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  ours=1
fi
trap 'if [ -n "$ours" ]; then $SUDO rm -f "$policy"; fi' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
