#!/usr/bin/env bash
# check-docs - every anomaly name (the core's in src/core/anomaly.h, the dissectors' in
# dissectors/*/*.c: X-macro lists and struct mx_anomaly_def tables) is documented in docs/
# (the manual, or a page of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
# Names: X(NAME, ...) lines of X-macro lists, and the entries of `struct mx_anomaly_def` tables.
names="$(sed -n 's/^ *X(\([A-Z0-9_]*\),.*/\1/p' src/core/anomaly.h dissectors/*/*.c) $(awk '/mx_anomaly_def [a-z_0-9]*\[[A-Z_0-9]*\] = \{/ { t = 1; next } t && /^\};/ { t = 0 } t' dissectors/*/*.c | sed -n 's/^ *{ "\([A-Z][A-Z0-9_]*\)", ".*/\1/p')"
[ -n "$names" ] || { echo "check-docs: no anomaly names found in src/core/anomaly.h"; exit 1; }
status=0
n=0
for name in $names; do
  n=$((n + 1))
  grep -q "\`$name\`" docs/*.md || { echo "check-docs: $name is not in docs/"; status=1; }
done
echo "check-docs: $n anomaly names checked"
exit $status
