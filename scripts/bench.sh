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
bazel build -c opt //benchmarks:port_benchmark //benchmarks:worker_benchmark
bazel run -c opt //benchmarks:port_benchmark -- --benchmark_min_time=0.1 "${flags[@]}" "$@"
bazel run -c opt //benchmarks:worker_benchmark -- "${flags[@]}" "$@"
