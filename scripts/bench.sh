#!/usr/bin/env bash
# Runs weave's benchmarks the way the README's table was made: each library
# figure beside its raw baseline, repeated and randomly interleaved (these
# machines are shared and noisy), medians reported.
#   scripts/bench.sh [extra Google Benchmark flags]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
flags=(--benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
  --benchmark_report_aggregates_only=true)
bazel build -c opt //benchmarks:port_benchmark //benchmarks:worker_benchmark \
  //benchmarks:atomics_benchmark //benchmarks:pool_benchmark
# As root, run them under SCHED_FIFO: on a shared 2-core machine other
# processes (a build, say) otherwise preempt one side of a ping-pong and the
# figures swing 2-3x. The kernel's RT throttling still leaves others 5%.
rt=()
if [[ $(id -u) == 0 ]] && command -v chrt >/dev/null; then rt=(chrt -f 1); fi
bin="$(bazel info -c opt bazel-bin 2>/dev/null)/benchmarks"
"${rt[@]}" "$bin/port_benchmark" --benchmark_min_time=0.1 "${flags[@]}" "$@"
"${rt[@]}" "$bin/worker_benchmark" "${flags[@]}" "$@"
"${rt[@]}" "$bin/atomics_benchmark" "${flags[@]}" "$@"
# Not under SCHED_FIFO: a pool benchmark runs more threads than cores (the
# submitter plus N workers that spin before they park), and FIFO threads of
# one priority never preempt each other, so a spinning worker would starve
# the submitter. Ten repetitions instead, for the noise.
"$bin/pool_benchmark" "${flags[@]/--benchmark_repetitions=5/--benchmark_repetitions=10}" "$@"
