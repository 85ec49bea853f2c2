#!/usr/bin/env bash
# demo.sh - sets up, builds mxray and runs it on the bundled demo capture.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target mxray >/dev/null
exec ./build/mxray pcaps/demo.pcapng
