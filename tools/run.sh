#!/usr/bin/env bash
# aioco developer entry point.
#
#   ./tools/run.sh report   install what is missing, build with -c opt, run every
#                           benchmark suite and print the side-by-side report
#                           (also written to bench/results/).
#   ./tools/run.sh test     install what is missing, then run the whole test
#                           suite: bazel test //... plain, under ASan+UBSan and
#                           under TSan, the coroutine tests on the ucontext
#                           backend, and a scratch consumer workspace build.
#   ./tools/run.sh deps     only install what is missing.
#
# Idempotent: packages already installed are not touched. Needs root (or sudo)
# only when something has to be installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Debian 12 packages the build, the tests and the report need.
PACKAGES=(
  bazel-bootstrap g++ python3
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libjemalloc-dev liburing-dev libboost-context-dev libboost-dev
  spin gdb gnuplot-nox libglib2.0-dev
)

log() { printf '\033[1m[run.sh]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[run.sh] error:\033[0m %s\n' "$*" >&2; exit 1; }

ensure_deps() {
  local missing=()
  local p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "all ${#PACKAGES[@]} required Debian packages are installed"
    return 0
  fi
  log "installing missing Debian packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${missing[*]}"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q ||
    die "apt-get update failed; check the network/apt sources, then install by hand: apt-get install ${missing[*]}"
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed for: ${missing[*]}"
  log "installed: ${missing[*]}"
}

BAZEL=(bazel)

# Runs `bazel test` with the given flags, keeps its output in $LOGDIR and
# records the per-target summary lines for the final count.
TEST_FAILED_STEPS=()
run_bazel_test() {
  local name="$1"; shift
  local out="$LOGDIR/$name.log"
  log "bazel test $* ($name)"
  local rc
  set +e
  "${BAZEL[@]}" test "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    TEST_FAILED_STEPS+=("$name (bazel exit $rc)")
  fi
  return 0
}

count_results() {
  # Summary lines look like: "//tests/aio:aio_context_test   PASSED in 0.3s".
  local passed failed skipped
  passed=$(cat "$LOGDIR"/*.log | grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' || true)
  failed=$(cat "$LOGDIR"/*.log | grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|FLAKY|INCOMPLETE|REMOTE FAILURE|NO STATUS)' || true)
  skipped=$(cat "$LOGDIR"/*.log | grep -cE '^//[^ ]+ +SKIPPED' || true)
  echo "$passed $failed $skipped"
}

cmd_test() {
  ensure_deps
  LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/aioco-test.XXXXXX")"
  local start=$SECONDS
  run_bazel_test plain //...
  run_bazel_test asan --config=asan //...
  run_bazel_test tsan --config=tsan //...
  run_bazel_test ucontext --config=ucontext //tests/coroutine/...
  log "consumer workspace: build and test @aioco//:aioco from a scratch workspace"
  if ! tests/consumer/consumer_workspace_test.sh 2>&1 | tee "$LOGDIR/consumer.log"; then
    TEST_FAILED_STEPS+=("consumer workspace")
  fi
  if [ "${CI:-}" = "true" ]; then "${BAZEL[@]}" shutdown >/dev/null 2>&1 || true; fi
  read -r passed failed skipped < <(count_results)
  # The consumer check counts as one more test.
  if grep -q '^consumer workspace: PASSED' "$LOGDIR/consumer.log"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
  log "logs: $LOGDIR; took $((SECONDS - start)) s"
  if [ "${#TEST_FAILED_STEPS[@]}" -ne 0 ]; then
    log "failed steps: ${TEST_FAILED_STEPS[*]}"
    [ "$failed" -gt 0 ] || failed=${#TEST_FAILED_STEPS[@]}
  fi
  echo "tests: $passed passed, $failed failed"
  [ "${#TEST_FAILED_STEPS[@]}" -eq 0 ]
}

cmd_report() {
  ensure_deps
  log "building benchmarks with --config=opt"
  local targets
  # Binaries tagged "not_benchmark" (the echo benchmark's servers) are built
  # as the benchmarks' data, not run as benchmarks.
  targets=$("${BAZEL[@]}" query 'kind("cc_binary", //bench/...) except attr("tags", "not_benchmark", //bench/...)' 2>/dev/null)
  [ -n "$targets" ] || die "no benchmark binaries found under //bench"
  # shellcheck disable=SC2086
  "${BAZEL[@]}" build --config=opt $targets
  local bin_dir
  bin_dir="$("${BAZEL[@]}" info --config=opt bazel-bin 2>/dev/null)"
  local bins=()
  local t
  for t in $targets; do
    local rel="${t#//}"
    bins+=("$bin_dir/${rel/://}")
  done
  mkdir -p bench/results
  python3 tools/report.py --results bench/results "${bins[@]}" "$@"
}

case "${1:-}" in
  test) shift; cmd_test "$@" ;;
  report) shift; cmd_report "$@" ;;
  deps) ensure_deps ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
