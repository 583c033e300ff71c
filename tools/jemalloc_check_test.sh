#!/usr/bin/env bash
# Runs jemalloc_check with the allocator this build configuration is expected
# to link (passed by the BUILD file from the //:jemalloc config_setting), and
# checks that the opposite expectation is rejected, so the check cannot pass
# vacuously.
set -euo pipefail
bin="$1"
expect="$2"
case "$expect" in
  jemalloc) other=glibc ;;
  glibc) other=jemalloc ;;
  *) echo "unknown expectation: $expect" >&2; exit 2 ;;
esac

echo "== expecting $expect"
out="$("$bin" --expect="$expect")" || { echo "$out"; echo "FAILED: malloc is not $expect"; exit 1; }
echo "$out"
grep -q "^OK: malloc is $expect" <<<"$out" || { echo "FAILED: no OK line for $expect"; exit 1; }

echo "== expecting $other (must fail)"
if out="$("$bin" --expect="$other")"; then
  echo "$out"
  echo "FAILED: jemalloc_check accepted --expect=$other as well"
  exit 1
fi
echo "$out"
grep -q "^FAIL: " <<<"$out" || { echo "FAILED: no FAIL line for $other"; exit 1; }
echo "PASSED"
