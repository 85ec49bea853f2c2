#!/usr/bin/env bash
# check-format.sh - every C file of src/, dissectors/ and tests/ is as clang-format
# (.clang-format) writes it. Prints the files that are not and exits 1; exits 77
# (skip) without clang-format. Fix them with: clang-format -i FILE...
set -uo pipefail
cd "$(dirname "$0")/.."
fmt=${CLANG_FORMAT:-clang-format}
command -v "$fmt" >/dev/null || { echo "check-format: $fmt is not installed"; exit 77; }
bad=0 n=0
while IFS= read -r f; do
  n=$((n + 1))
  if ! "$fmt" "$f" | cmp -s - "$f"; then
    echo "check-format: $f is not formatted (clang-format -i $f)"
    bad=$((bad + 1))
  fi
done < <(git ls-files 'src/*.[ch]' 'src/*.h.in' 'dissectors/*.[ch]' 'tests/*.[ch]' 2>/dev/null || find src dissectors tests -name '*.[ch]')
echo "check-format: $n files, $bad not formatted"
[ "$bad" = 0 ]
