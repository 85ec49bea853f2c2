#!/bin/sh
# microbench.sh - builds and runs the content path's micro-benchmark
# (scripts/microbench/decoders.c, issue 28): the base64 and quoted-printable
# decoders, the message parser by --hashes, OpenSSL's digests alone.
# usage: scripts/microbench.sh [MIB]   (default 64; build dir build-bench/, -O2)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
b="$root/build-bench"
cmake -S "$root" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$b" --target mx_microbench -j "$(nproc)" >/dev/null
exec "$b/mx_microbench" "${1:-64}"
