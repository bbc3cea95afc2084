#!/usr/bin/env bash
# Installs what weave's offline Bazel build needs, from Debian packages only.
# Fast no-op (one dpkg-query) when everything is there. Works as root, or via
# sudo when not root.
set -euo pipefail

packages=(
  bazel-bootstrap         # Bazel 4.2.3 as /usr/bin/bazel
  g++                     # g++ 12, with the TSan/ASan/UBSan runtimes
  libconcurrentqueue-dev  # moodycamel ConcurrentQueue (header-only)
  libgtest-dev libgmock-dev
  libbenchmark-dev
  # scripts/fuzz.sh: libFuzzer with ASan/UBSan. Clang 16, because clang 14
  # lacks C++20's parenthesised aggregate init (channel/internal/inbox.h).
  clang-16 libclang-rt-16-dev
  make
)

# dpkg-query prints one "<pkg> <status>" line per known package; anything not
# "install ok installed" (or unknown to dpkg, hence silent) is missing.
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null \
  | awk '$NF == "installed" { print $1 }' || true)
missing=()
for p in "${packages[@]}"; do
  grep -qxF -- "$p" <<<"$installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

echo "setup.sh: installing ${missing[*]}" >&2
sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "setup.sh: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
