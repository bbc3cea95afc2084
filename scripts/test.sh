#!/usr/bin/env bash
# Builds and runs weave's tests, then prints one summary line counted from the
# JUnit XML of this run (cached results included, earlier runs/configs not).
#
#   scripts/test.sh                      # bazel test //...
#   scripts/test.sh --config=tsan        # extra args go to `bazel test`
#   scripts/test.sh --config=asan //channel/...   # targets replace //...
#
# With CI=true, --config=ci (see .bazelrc) is added. If WEAVE_TEST_COUNTS names
# a file, "<passed> <failed>" is appended to it (used by .ci/run).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit

args=("$@")
[[ ${CI:-} == true ]] && args=(--config=ci "${args[@]}")
have_target=false
for a in "$@"; do [[ $a == //* || $a == @* || $a == :* ]] && have_target=true; done
$have_target || args+=(//...)

# The build event protocol file lists, per test target of this run, its
# status and the path of each shard's test.xml, in the config actually used.
bep=$(mktemp)
trap 'rm -f "$bep"' EXIT
bazel test --build_event_json_file="$bep" "${args[@]}"
rc=$?

# Sum <testsuite> attributes (not the <testsuites> total, which would double
# count). passed = tests - failures - errors - skipped - disabled. A target
# that left no XML (e.g. crashed before writing one) counts as one test.
read -r passed failed skipped targets < <(awk '
  function attr(s, name) { return match(s, " " name "=\"[0-9]+\"") ? substr(s, RSTART + length(name) + 3, RLENGTH - length(name) - 4) + 0 : 0 }
  function str(s, re, skip) { return match(s, re) ? substr(s, RSTART + skip, RLENGTH - skip - 1) : "" }
  /"testResult":\{"testActionOutput"/ {
    # Key by target/run/shard so a retried attempt replaces the earlier one.
    key = str($0, "\"label\":\"[^\"]*\"", 9) "/" str($0, "\"run\":[0-9]+,", 6) "/" str($0, "\"shard\":[0-9]+,", 8)
    xml[key] = str($0, "\"name\":\"test.xml\",\"uri\":\"file://[^\"]*\"", 32)
    target_of[key] = str($0, "\"label\":\"[^\"]*\"", 9)
  }
  /"testSummary":\{"/ && /"overallStatus"/ { status[str($0, "\"label\":\"[^\"]*\"", 9)] = str($0, "\"overallStatus\":\"[A-Z_]*\"", 17) }
  END {
    for (k in xml) {
      if (xml[k] == "") continue
      while ((getline line < xml[k]) > 0) if (line ~ /<testsuite[ >]/) {
        t = attr(line, "tests"); f = attr(line, "failures") + attr(line, "errors")
        s = attr(line, "skipped") + attr(line, "disabled")
        P += t - f - s; F += f; S += s; found[target_of[k]] = 1
      }
      close(xml[k])
    }
    for (t in status) {
      N++
      if (!(t in found)) { if (status[t] == "PASSED" || status[t] == "FLAKY") P++; else F++ }
    }
    print P + 0, F + 0, S + 0, N + 0
  }' "$bep")

# Bazel exit codes: 0 ok, 3 tests failed, 4 built fine but no test targets.
note=""
if ((rc == 4)); then note=" (no test targets)"; rc=0; fi
if ((rc != 0 && failed == 0)); then failed=1; note=" (bazel exited $rc: build error?)"; fi
echo "weave tests [${*:-//...}]: $passed passed, $failed failed, $skipped skipped/disabled, from $targets test targets run$note"
[[ -n ${WEAVE_TEST_COUNTS:-} ]] && echo "$passed $failed" >>"$WEAVE_TEST_COUNTS"
((rc != 0)) && exit "$rc"
((failed == 0))
