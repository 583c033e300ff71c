#!/usr/bin/env bash
# Model-checks the CoMutex hand-off protocol (co_mutex.pml) with Spin.
#
#   safety:   assertions (mutual exclusion, single popper, token invariant)
#             and end states (no lost waiter), for 3 processes x 1 round and
#             2 processes x 3 rounds, tokens wrapping after 2 values;
#   liveness: non-progress cycles and the `starve` LTL property under weak
#             fairness, for 2 processes (with spinning) and 3 (without);
#   mutants:  two broken variants of the protocol must be rejected, so the
#             checks above can fail.
#
# Needs `spin` (Debian package spin; tools/run.sh installs it) and a C
# compiler. Missing tools are an error, not a skip.
set -euo pipefail

die() { echo "run_model.sh: FAIL: $*" >&2; exit 1; }

SPIN="$(command -v spin || true)"
[ -n "$SPIN" ] || die "spin not found in PATH (install the Debian package 'spin': ./tools/run.sh deps)"
CC="$(command -v gcc || command -v cc || true)"
[ -n "$CC" ] || die "no C compiler (gcc/cc) found to build Spin's verifier"

MODEL=""
for candidate in "${TEST_SRCDIR:-}/${TEST_WORKSPACE:-aioco}/tests/model/co_mutex.pml" \
                 "$(dirname "$0")/co_mutex.pml"; do
  if [ -f "$candidate" ]; then MODEL="$candidate"; break; fi
done
[ -n "$MODEL" ] || die "co_mutex.pml not found"

WORK="$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/co_mutex_model.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cp "$MODEL" "$WORK/co_mutex.pml"
cd "$WORK"

# verify NAME EXPECT SPIN_DEFINES -- CC_DEFINES -- PAN_ARGS
#   EXPECT is "pass" or "fail".
verify() {
  local name="$1" expect="$2"; shift 2
  local spin_defs=() cc_defs=() pan_args=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do spin_defs+=("$1"); shift; done
  shift
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do cc_defs+=("$1"); shift; done
  shift
  pan_args=("$@")

  rm -f pan pan.* ./*.trail
  "$SPIN" "${spin_defs[@]}" -a co_mutex.pml > spin.log 2>&1 ||
    { cat spin.log; die "$name: spin -a failed"; }
  "$CC" -O2 -w -DMEMLIM=1024 "${cc_defs[@]}" -o pan pan.c > cc.log 2>&1 ||
    { cat cc.log; die "$name: compiling pan.c failed"; }
  local rc=0
  ./pan -m2000000 "${pan_args[@]}" > pan.log 2>&1 || rc=$?
  local errors
  errors="$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.log | tail -n 1)"
  local states
  states="$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.log | tail -n 1)"
  if grep -q 'Search not completed' pan.log && [ "${errors:-0}" = "0" ]; then
    cat pan.log; die "$name: search incomplete (raise MEMLIM or -m)"
  fi
  if grep -q 'out of memory\|pan: reached -DMEMLIM' pan.log; then
    cat pan.log; die "$name: ran out of memory"
  fi
  [ -n "$errors" ] || { cat pan.log; die "$name: could not read pan's result (rc $rc)"; }
  if [ "$expect" = "pass" ]; then
    if [ "$errors" != "0" ]; then
      cat pan.log
      [ -f co_mutex.pml.trail ] && "$SPIN" "${spin_defs[@]}" -t -p -g co_mutex.pml | tail -n 60
      die "$name: $errors error(s)"
    fi
    echo "PASS $name ($states states)"
  else
    [ "$errors" != "0" ] || { cat pan.log; die "$name: mutant was NOT caught"; }
    echo "PASS $name (mutant caught: $(grep -m1 '^pan:1:' pan.log || echo error))"
  fi
}

verify "safety N=3 rounds=1" pass -DN=3 -DITERS=1 -- -DSAFETY -DCOLLAPSE --
verify "safety N=2 rounds=3" pass -DN=2 -DITERS=3 -- -DSAFETY -DCOLLAPSE --
verify "non-progress N=2 (weak fairness)" pass -DN=2 -DLIVE -- -DNP -DCOLLAPSE -- -l -f
verify "starvation-freedom N=2 (weak fairness)" pass -DN=2 -DLIVE -- -DCOLLAPSE -- -a -f -N starve
verify "starvation-freedom N=3 no-spin (weak fairness)" pass -DN=3 -DLIVE -DSPIN=0 -- -DCOLLAPSE -- -a -f -N starve
verify "mutant: unlocker never takes its token back" fail -DN=2 -DITERS=2 -DMUTANT_NO_TAKEBACK -- -DSAFETY --
verify "mutant: lockers ignore the token" fail -DN=2 -DITERS=2 -DMUTANT_NO_STEAL -- -DSAFETY --
echo "co_mutex model: all checks passed"
