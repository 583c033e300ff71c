#!/usr/bin/env bash
# Model-checks a lock protocol with Spin. The argument names the model:
# co_mutex (the default) or co_rwlock.
#
# co_mutex: the CoMutex hand-off protocol (co_mutex.pml)
#   safety:   assertions (mutual exclusion, single popper, token invariant)
#             and end states (no lost waiter), for 3 processes x 1 round and
#             2 processes x 3 rounds, tokens wrapping after 2 values;
#   liveness: non-progress cycles and the `starve` LTL property under weak
#             fairness, for 2 processes (with spinning) and 3 (without);
#   mutants:  two broken variants of the protocol must be rejected, so the
#             checks above can fail.
#
# co_rwlock: the CoRwlock ticket protocol (co_rwlock.pml)
#   safety:   assertions (no writer with another writer or a reader; the
#             state word's reader count, writer and queued bits; FIFO order;
#             the code's own checks) and end states (no lost wake-up), for
#             3 processes x 1 operation and 2 processes x 3 operations, each
#             operation any of read, write, read+Upgrade, write+Downgrade;
#             and for a writer that downgrades and keeps its read lock while
#             2 readers queue behind it;
#   liveness: non-progress cycles and the `starve` LTL property under weak
#             fairness, for 2 processes (with spinning) and for 1 writer
#             against 2 readers (without);
#   mutants:  readers ignoring the queued bit on the fast path, the last
#             reader leaving without the hand-over, and Downgrade() granting
#             nobody must be rejected.
#
# Full state-space searches (no bitstate hashing), with -DCOLLAPSE.
# Needs `spin` (Debian package spin; tools/run.sh installs it) and a C
# compiler. Missing tools are an error, not a skip.
set -euo pipefail

die() { echo "run_model.sh: FAIL: $*" >&2; exit 1; }

SPIN="$(command -v spin || true)"
[ -n "$SPIN" ] || die "spin not found in PATH (install the Debian package 'spin': ./tools/run.sh deps)"
CC="$(command -v gcc || command -v cc || true)"
[ -n "$CC" ] || die "no C compiler (gcc/cc) found to build Spin's verifier"

NAME="${1:-co_mutex}"
case "$NAME" in
  co_mutex|co_rwlock) ;;
  *) die "unknown model '$NAME' (co_mutex or co_rwlock)" ;;
esac
PML="$NAME.pml"

MODEL=""
for candidate in "${TEST_SRCDIR:-}/${TEST_WORKSPACE:-aioco}/tests/model/$PML" \
                 "$(dirname "$0")/$PML"; do
  if [ -f "$candidate" ]; then MODEL="$candidate"; break; fi
done
[ -n "$MODEL" ] || die "$PML not found"

WORK="$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/${NAME}_model.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cp "$MODEL" "$WORK/$PML"
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
  "$SPIN" "${spin_defs[@]}" -a "$PML" > spin.log 2>&1 ||
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
      [ -f "$PML.trail" ] && "$SPIN" "${spin_defs[@]}" -t -p -g "$PML" | tail -n 60
      die "$name: $errors error(s)"
    fi
    echo "PASS $name ($states states)"
  else
    [ "$errors" != "0" ] || { cat pan.log; die "$name: mutant was NOT caught"; }
    echo "PASS $name (mutant caught: $(grep -m1 '^pan:1:' pan.log || echo error))"
  fi
}

if [ "$NAME" = co_mutex ]; then
  verify "safety N=3 rounds=1" pass -DN=3 -DITERS=1 -- -DSAFETY -DCOLLAPSE --
  verify "safety N=2 rounds=3" pass -DN=2 -DITERS=3 -- -DSAFETY -DCOLLAPSE --
  verify "non-progress N=2 (weak fairness)" pass -DN=2 -DLIVE -- -DNP -DCOLLAPSE -- -l -f
  verify "starvation-freedom N=2 (weak fairness)" pass -DN=2 -DLIVE -- -DCOLLAPSE -- -a -f -N starve
  verify "starvation-freedom N=3 no-spin (weak fairness)" pass -DN=3 -DLIVE -DSPIN=0 -- -DCOLLAPSE -- -a -f -N starve
  verify "mutant: unlocker never takes its token back" fail -DN=2 -DITERS=2 -DMUTANT_NO_TAKEBACK -- -DSAFETY --
  verify "mutant: lockers ignore the token" fail -DN=2 -DITERS=2 -DMUTANT_NO_STEAL -- -DSAFETY --
else
  verify "safety N=3 ops=1" pass -DN=3 -DITERS=1 -- -DSAFETY -DCOLLAPSE --
  verify "safety N=2 ops=3 spin=2" pass -DN=2 -DITERS=3 -DSPIN=2 -- -DSAFETY -DCOLLAPSE --
  verify "non-progress N=2 (weak fairness)" pass -DN=2 -DLIVE -- -DNP -DCOLLAPSE -- -l -f
  verify "starvation-freedom N=2 (weak fairness)" pass -DN=2 -DLIVE -- -DCOLLAPSE -- -a -f -N starve
  verify "writer starvation-freedom N=3 (1 writer, 2 readers) no-spin (weak fairness)" pass -DN=3 -DLIVE -DSPIN=0 -DOPS0=2 -DOPS1=1 -DOPS2=1 -- -DCOLLAPSE -- -a -f -N starve
  verify "safety N=3 downgrader keeps its read lock" pass -DN=3 -DITERS=2 -DDOWNGRADE_KEEPS -DOPS1=1 -DOPS2=1 -- -DSAFETY -DCOLLAPSE --
  # The mutants fail within a few hundred states: -O0 compiles fastest.
  verify "mutant: readers ignore the queued bit" fail -DN=2 -DITERS=2 -DMUTANT_READ_IGNORES_QUEUED -- -DSAFETY -O0 --
  verify "mutant: last reader leaves without the hand-over" fail -DN=2 -DITERS=2 -DMUTANT_LAST_READER_PLAIN -- -DSAFETY -O0 --
  verify "mutant: Downgrade() grants nobody" fail -DN=3 -DITERS=1 -DDOWNGRADE_KEEPS -DOPS1=1 -DOPS2=1 -DMUTANT_DOWNGRADE_NO_GRANT -- -DSAFETY -O0 --
fi
echo "$NAME model: all checks passed"
