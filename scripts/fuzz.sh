#!/usr/bin/env bash
# fuzz - builds the libFuzzer targets with clang and fuzzes each for SECS
# seconds (default 60), starting from its seed corpus. New inputs go to
# build-fuzz/corpus-<target>; a crash leaves crash-*/timeout-* files in
# build-fuzz/ and a non-zero exit: copy the input into tests/fuzz/corpus/<target>/
# as a regression.
#
# usage: scripts/fuzz.sh [--fast] [--jobs N] [--procs N] [--ledger] [SECS] [TARGET...]
#        scripts/fuzz.sh --keep [TARGET...]
#        scripts/fuzz.sh --totals
#   --fast    long campaigns: fuzz with the MX_FUZZ_FAST build (build-fuzz-fast:
#             UBSan, no ASan, no comparison tracing; about three times the
#             executions a second), then replay the whole corpus, with what
#             the campaign added, under the ASan+UBSan build (build-fuzz).
#   --jobs N  fuzz N targets at a time (default 1), at nice 10.
#   --procs N fuzz each target with N processes at once (default 1), sharing
#             its corpus folder, as libFuzzer's own -jobs does; each process
#             logs to build-fuzz/logs/<t>.log, <t>.1.log, ... and has its
#             ledger row. With --jobs, N * jobs processes run.
#   --ledger  add a row per target to tests/fuzz/ledger.tsv (date, the commit
#             built, "+" when src/, dissectors/ or tests/ had changes, target,
#             build, seconds run, executions, result).
# kill -USR1 on a fuzzer (build-fuzz*/tests/fuzz_<t>) ends its run early and
# cleanly: libFuzzer prints its totals, and the replay and the ledger follow.
#   --totals  print the ledger's executions per target and exit.
#   --keep    (no fuzzing) merge what the campaigns found (build-fuzz/corpus-<t>)
#             into tests/fuzz/campaign/<t>/: the fewest inputs that reach every
#             edge the seeds, the kept inputs and the campaign reach, less the
#             seeds themselves. The replay tests and later campaigns start there.
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0 jobs=1 procs=1 ledger=0 keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --keep) keep=1; shift ;;
    --fast) fast=1; shift ;;
    --jobs) jobs=$2; shift 2 ;;
    --procs) procs=$2; shift 2 ;;
    --ledger) ledger=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --totals)
      awk -F'\t' 'NR > 1 { n[$3] += $6; if ($7 != "ok") bad[$3]++ }
        END { for (t in n) printf "%-8s %12d executions%s\n", t, n[t], bad[t] ? "  (" bad[t] " with a crash)" : "" }' \
        tests/fuzz/ledger.tsv | sort
      exit 0 ;;
    *) break ;;
  esac
done
secs=60
if [ $keep = 0 ]; then
  secs=${1:-60}
  shift || true
fi
case $secs in
  '' | *[!0-9]*) echo "fuzz: SECS must be a number of seconds, not '$secs' (see --help)" >&2; exit 2 ;;
esac
for n in "$jobs" "$procs"; do
  case $n in
    '' | 0* | *[!0-9]*) echo "fuzz: --jobs and --procs take a whole number from 1, not '$n'" >&2; exit 2 ;;
  esac
done
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(smtp pop3 imap message tls tunnel pcap reasm keylog)
names=$(printf 'fuzz_%s ' "${targets[@]}")

build() { # dir, extra cmake options...
  local dir=$1
  shift
  CC=clang cmake -S . -B "$dir" -DMX_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  # shellcheck disable=SC2086
  cmake --build "$dir" -j"$(nproc)" --target $names >/dev/null
}
build build-fuzz
# The code fuzzed: the commit built, marked when the tree had changes.
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src dissectors tests CMakeLists.txt ':!tests/fuzz/ledger.tsv' || echo +)
run_dir=build-fuzz
if [ $fast = 1 ]; then
  build build-fuzz-fast -DMX_FUZZ_FAST=ON
  run_dir=build-fuzz-fast
fi
mkdir -p build-fuzz/logs

# The seed folders of target $1, from the top of the tree: its seeds and what
# earlier campaigns kept; fuzz_pcap also starts from the project's captures.
seed_dirs() {
  echo "tests/fuzz/corpus/$1"
  [ ! -d "tests/fuzz/campaign/$1" ] || echo "tests/fuzz/campaign/$1"
  [ "$1" != pcap ] || printf 'pcaps/%s\n' smtp pop3 imap impaired tunnel
}

if [ $keep = 1 ]; then
  for t in "${targets[@]}"; do
    local_seeds=() kept=tests/fuzz/campaign/$t new=
    mapfile -t local_seeds < <(seed_dirs "$t")
    new=$(mktemp -d)
    mkdir -p "build-fuzz/corpus-$t"
    # -use_counters=0: edges only, not hit counts, so the set stays small.
    build-fuzz/tests/fuzz_$t -merge=1 -use_counters=0 -rss_limit_mb=2048 -max_len=262144 \
      "$new" "${local_seeds[@]}" "build-fuzz/corpus-$t" >"build-fuzz/logs/$t.keep.log" 2>&1 ||
      { tail -n 20 "build-fuzz/logs/$t.keep.log"; rm -rf "$new"; exit 1; }
    # libFuzzer names what it writes by the SHA-1 of its contents: the seeds
    # (not what an earlier campaign kept) are taken out again.
    for d in "${local_seeds[@]}"; do
      [ "$d" = "$kept" ] && continue
      for f in "$d"/*; do
        if [ -f "$f" ]; then rm -f "$new/$(sha1sum <"$f" | cut -c1-40)"; fi
      done
    done
    rm -rf "$kept" && mkdir -p "$kept" && cp "$new"/* "$kept"/ 2>/dev/null || true
    rm -rf "$new"
    echo "fuzz: kept $(ls "$kept" | wc -l) inputs ($(cat "$kept"/* 2>/dev/null | wc -c) bytes) in $kept"
  done
  exit 0
fi

# One campaign: fuzz target $1 with $procs processes, then (with --fast)
# replay its corpus under ASan.
campaign() {
  local t=$1 bin seeds max_len result=ok i
  local logs=() fuzzers=() results=()
  bin=$PWD/$run_dir/tests/fuzz_$t
  mkdir -p "build-fuzz/corpus-$t"
  # fuzz_pcap starts from the project's own captures too, and takes whole
  # files; the dissector targets take records of at most 128 bytes.
  mapfile -t seeds < <(seed_dirs "$t" | sed 's|^|../|')
  max_len=65536
  if [ "$t" = pcap ]; then
    max_len=$([ $fast = 1 ] && echo 65536 || echo 262144)
  elif [ $fast = 1 ]; then
    max_len=8192 # past every line and token cap; shorter inputs run faster
  fi
  for ((i = 0; i < procs; i++)); do
    logs+=("logs/$t$([ $i = 0 ] || echo ".$i").log")
    # The seconds it ran go at the end of its log (SIGUSR1 ends a run early).
    (
      cd build-fuzz
      start=$SECONDS rc=0
      nice -n 10 "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=60 -max_len=$max_len \
        -print_final_stats=1 "corpus-$t" "${seeds[@]}" >"${logs[$i]}" 2>&1 || rc=$?
      echo "fuzz: ran $((SECONDS - start)) s" >>"${logs[$i]}"
      exit $rc
    ) &
    fuzzers+=($!)
  done
  for i in "${!fuzzers[@]}"; do
    results[i]=ok
    wait "${fuzzers[$i]}" || { results[i]=crash result=crash; }
  done
  if [ $fast = 1 ] && [ $result = ok ]; then
    # ASan+UBSan over every input kept, old and new (-runs=0: load only).
    if ! (cd build-fuzz && tests/fuzz_$t -runs=0 -rss_limit_mb=2048 -timeout=60 -max_len=$max_len \
          "corpus-$t" >"logs/$t.replay.log" 2>&1); then
      result=asan-replay
      for i in "${!results[@]}"; do results[i]=$result; done
    fi
  fi
  local runs ran total=0 log
  for i in "${!logs[@]}"; do
    log=build-fuzz/${logs[$i]}
    runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
    ran=$(awk '/^fuzz: ran [0-9]+ s$/ { print $3 }' "$log")
    total=$((total + ${runs:-0}))
    [ "${results[$i]}" != crash ] || tail -n 30 "$log" | sed 's/^/  /'
    if [ $ledger = 1 ]; then
      [ -f tests/fuzz/ledger.tsv ] ||
        printf 'date\tcommit\ttarget\tbuild\tseconds\texecutions\tresult\n' >tests/fuzz/ledger.tsv
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%F)" "$commit" "$t" \
        "$([ $fast = 1 ] && echo fast || echo asan)" "${ran:-$secs}" "${runs:-0}" "${results[$i]}" >>tests/fuzz/ledger.tsv
    fi
  done
  echo "fuzz: $t ${secs}s $([ $fast = 1 ] && echo fast || echo asan) x$procs: $total runs, $result"
  [ $result != asan-replay ] || tail -n 30 "build-fuzz/logs/$t.replay.log" | sed 's/^/  /'
  [ $result = ok ]
}

status=0 pids=()
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${secs}s"
  campaign "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do
  wait "$p" || status=1
done
exit $status
