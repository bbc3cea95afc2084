#!/usr/bin/env bash
# The README's first C++ block must be demo/hello.cc, line for line.
set -euo pipefail
readme="README.md"
hello="demo/hello.cc"
extracted=$(awk '/^```cpp$/ {inblock=1; next} /^```$/ && inblock {exit} inblock {print}' "$readme")
if [[ "$extracted" != "$(cat "$hello")" ]]; then
  echo "README.md's first program differs from demo/hello.cc:" >&2
  diff <(echo "$extracted") "$hello" >&2 || true
  exit 1
fi
echo "README program matches demo/hello.cc"
