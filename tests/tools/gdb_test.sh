#!/usr/bin/env bash
# Runs tools/gdb/aioco.py in gdb (batch mode) on gdb_target, stopped at
# BreakHere() with coroutines in every state, and checks the listing, the
# backtraces of suspended coroutines, and that the process still finishes
# normally afterwards (the registers borrowed for the backtraces were restored).
# Under ASan the inferior runs without LeakSanitizer, which cannot work under
# ptrace.
set -euo pipefail
# $1: "backtrace" or "list_only" (the ucontext backend keeps its saved
# context in a mangled jmp_buf: the script lists coroutines but cannot unwind
# them there).
mode="$1"
script="$2"
target="$3"
shift 3
# Object files with full DWARF (fastbuild strips the linked binary's).
symbol_files=()
for obj in "$@"; do
  case "$obj" in *.o) symbol_files+=(-ex "add-symbol-file $obj -o 0") ;; esac
done
out="${TEST_TMPDIR:-/tmp}/gdb_out.txt"

gdb -nx -batch \
  -ex 'set pagination off' \
  -ex 'set confirm off' \
  -ex 'set disable-randomization off' \
  -ex 'set environment ASAN_OPTIONS=detect_leaks=0' \
  -ex "source $script" \
  -ex 'break BreakHere' \
  -ex 'run' \
  -ex 'delete' \
  "${symbol_files[@]}" \
  -ex 'echo ==LIST==\n' \
  -ex 'aioco list' \
  -ex 'echo ==BTALL==\n' \
  -ex 'aioco bt-all' \
  -ex 'echo ==BT1==\n' \
  -ex 'aioco bt #3' \
  -ex 'echo ==THREAD==\n' \
  -ex 'bt' \
  -ex 'echo ==CONTINUE==\n' \
  -ex 'continue' \
  "$target" >"$out" 2>&1 || true
cat "$out"

fail() { echo "FAILED: $*"; exit 1; }
section() { sed -n "/^==$1==/,/^==/p" "$out"; }

list="$(section LIST)"
grep -qE '^[0-9]+ coroutines \(' <<<"$list" || fail "no coroutine count"
[ "$(grep -cE '^#[0-9]+ +0x[0-9a-f]+ +running ' <<<"$list")" -eq 1 ] || fail "expected 1 running coroutine"
[ "$(grep -cE '^#[0-9]+ +0x[0-9a-f]+ +yielded ' <<<"$list")" -eq 2 ] || fail "expected 2 yielded coroutines"
[ "$(grep -cE '^#[0-9]+ +0x[0-9a-f]+ +scheduled .*by CoSchedule' <<<"$list")" -eq 1 ] || fail "expected 1 scheduled coroutine"

if [ "$mode" = list_only ]; then
  grep -q 'gdb_target: done' "$out" || fail "the program did not finish after the session"
  echo PASSED
  exit 0
fi

btall="$(section BTALL)"
grep -q 'ParkedInAlpha' <<<"$btall" || fail "ParkedInAlpha not in a yielded coroutine's backtrace"
[ "$(grep -c 'ParkedInBeta' <<<"$btall")" -eq 4 ] || fail "expected 4 ParkedInBeta frames"
grep -q 'Coroutine::Yield' <<<"$btall" || fail "Coroutine::Yield not in the backtraces"
grep -qE ' in main \(' <<<"$btall" && fail "a coroutine backtrace ran into main(): unwinding is wrong"

# Listing order is by address; the coroutine parked in ParkedInAlpha was
# created first, so its stack is mapped highest: #3.
grep -q 'ParkedInAlpha' <<<"$(section BT1)" || fail "aioco bt #3 is not ParkedInAlpha's coroutine"
section THREAD | grep -q 'BreakHere' || fail "registers not restored: bt no longer shows BreakHere"
grep -q 'gdb_target: done' "$out" || fail "the program did not finish after the session"
grep -qE 'exited normally' "$out" || fail "the program did not exit normally"
echo PASSED
