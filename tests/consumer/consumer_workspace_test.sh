#!/usr/bin/env bash
# Builds and runs a test in a scratch Bazel workspace that consumes aioco the
# way a user does: local_repository(name = "aioco") + aioco_workspace() +
# deps on @aioco//:aioco, including only the public headers named in API.md.
#
# Run by ./tools/run.sh test (not by `bazel test`: it runs Bazel itself).
set -euo pipefail
AIOCO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WS="$(mktemp -d "${TMPDIR:-/tmp}/aioco-consumer.XXXXXX")"
trap 'rm -rf "$WS"' EXIT
# A stable output root keeps reruns incremental.
OUT_ROOT="${AIOCO_CONSUMER_OUTPUT_ROOT:-${HOME:-/root}/.cache/aioco-consumer-bazel}"

cat >"$WS/WORKSPACE" <<WS_EOF
workspace(name = "consumer")

local_repository(name = "aioco", path = "$AIOCO")

load("@aioco//third_party:workspace.bzl", "aioco_workspace")

aioco_workspace()
WS_EOF

cat >"$WS/.bazelrc" <<'RC_EOF'
build --nosandbox_debug
build --cxxopt=-std=c++20 --host_cxxopt=-std=c++20
test --test_output=errors
RC_EOF

cp "$AIOCO/tests/consumer/consumer_test.cc" "$WS/consumer_test.cc"
cat >"$WS/BUILD.bazel" <<'BUILD_EOF'
cc_test(
    name = "consumer_test",
    srcs = ["consumer_test.cc"],
    deps = [
        "@aioco//:aioco",
        "@com_google_googletest//:gtest_main",
    ],
)
BUILD_EOF

cd "$WS"
rc=0
bazel --output_user_root="$OUT_ROOT" test //:consumer_test || rc=$?
bazel --output_user_root="$OUT_ROOT" shutdown >/dev/null 2>&1 || true
if [ "$rc" -eq 0 ]; then
  echo "consumer workspace: PASSED"
else
  echo "consumer workspace: FAILED (bazel exit $rc)"
fi
exit "$rc"
