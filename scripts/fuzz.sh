#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, with ASan + UBSan + LeakSanitizer) of
# weave's wire decoder and of a port receiving wire bytes: fuzz/README.md.
#
#   scripts/fuzz.sh                 the long run: 5,000,000 executions per
#                                   target (10^7 in all)
#   scripts/fuzz.sh --runs N        N executions per target
#   scripts/fuzz.sh --seconds N     N seconds per target, the targets side by
#                                   side (CI: --seconds 60, about a minute)
#   scripts/fuzz.sh --make-corpus   regenerate the seed corpus fuzz/corpus/*/
#
# Builds with clang++-16 (FUZZ_CXX to override; clang 14 lacks C++20's
# parenthesised aggregate initialisation, which channel/internal/inbox.h
# uses) outside Bazel into $WEAVE_FUZZ_BUILD (default /tmp/weave-fuzz),
# incrementally. New inputs that add coverage accumulate in
# $WEAVE_FUZZ_BUILD/work/<target>/; the checked-in seeds are only read.
#
# Prints, per target, the executions and libFuzzer's final cov: (coverage
# edges) and ft: (features) figures, and fails (exit 1) on any crash, broken
# property (fuzz/fuzz_util.h), sanitizer report, leak, slow input
# (-timeout), RSS above -rss_limit_mb, or single allocation above
# -malloc_limit_mb. The malloc limit is set from -max_len: the largest value
# an input of max_len bytes can justify is max_len items of at most 80 bytes
# (an object entry), doubled for vector growth — 10 MiB for 64 KiB — so any
# allocation above 12 MiB is one the input did not justify. (A declared
# count reserved up front, the bug review 2.1 found, stays below that ratio:
# tests/channel/wire_alloc_test.cc pins it.)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=runs
amount=5000000
case "${1:-}" in
  "") ;;
  --runs) mode=runs; amount=${2:?--runs needs a count} ;;
  --seconds) mode=seconds; amount=${2:?--seconds needs a count} ;;
  --make-corpus) mode=corpus ;;
  *) echo "usage: scripts/fuzz.sh [--runs N | --seconds N | --make-corpus]" >&2; exit 2 ;;
esac
[[ $mode == corpus || $amount =~ ^[0-9]+$ ]] || { echo "fuzz.sh: not a count: $amount" >&2; exit 2; }

scripts/setup.sh
build=${WEAVE_FUZZ_BUILD:-/tmp/weave-fuzz}
export FUZZ_CXX=${FUZZ_CXX:-clang++-16}
make -s -f fuzz/Makefile BUILD="$build" -j"$(nproc)" </dev/null

targets=(deserialize port)
if [[ $mode == corpus ]]; then
  for t in "${targets[@]}"; do rm -rf "fuzz/corpus/$t"; mkdir -p "fuzz/corpus/$t"; done
  "$build/make_corpus" "${targets[@]/#/fuzz/corpus/}"
  echo "fuzz.sh: wrote $(ls fuzz/corpus/deserialize | wc -l) seeds per target into fuzz/corpus/"
  exit 0
fi

symbolizer=$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0${symbolizer:+:external_symbolizer_path=$symbolizer}}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
flags=(-max_len=65536 -malloc_limit_mb=12 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
  -print_pcs=0 -close_fd_mask=0)
if [[ $mode == runs ]]; then flags+=(-runs="$amount"); else flags+=(-max_total_time="$amount"); fi

pids=()
for t in "${targets[@]}"; do
  mkdir -p "$build/work/$t" "$build/artifacts" "$build/logs"
  "$build/${t}_fuzzer" "${flags[@]}" -artifact_prefix="$build/artifacts/$t-" \
    "$build/work/$t" "fuzz/corpus/$t" </dev/null >"$build/logs/$t.log" 2>&1 &
  pids+=($!)
done

failed=0
total=0
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  rc=0
  wait "${pids[$i]}" || rc=$?
  log="$build/logs/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  final=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse)' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$final")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$final")
  printf 'fuzz.sh: %-12s executions %s  cov %s  ft %s  corpus %s  rc %d\n' \
    "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$(ls "$build/work/$t" | wc -l)" "$rc"
  total=$((total + ${execs:-0}))
  if ((rc != 0)); then
    failed=1
    echo "fuzz.sh: $t FAILED (rc $rc); log $log; its last lines:" >&2
    grep -E 'ERROR|SUMMARY|broken promise|out-of-memory|malloc\(|leak|timeout|crash|Test unit written' "$log" | head -20 >&2 || true
    ls "$build/artifacts/$t-"* 2>/dev/null >&2 || true
  fi
done
echo "fuzz.sh: $total executions in all"
exit "$failed"
