#!/usr/bin/env bash
# Builds and runs weave's demo program (optimised: -c opt, NDEBUG).
#   scripts/demo.sh [program args...]
set -euo pipefail

DEMO_LABEL="//demo:offload_demo"   # the demo's Bazel target

cd "$(dirname "$0")/.."
scripts/setup.sh
exec bazel run -c opt "$DEMO_LABEL" -- "$@"
