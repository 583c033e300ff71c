// -----------------------------------------------------------------------------
// File: coroutine/internal/stack.h
// -----------------------------------------------------------------------------
//
// Coroutine stacks: one mmap per coroutine holding, from the top down, the
// Coroutine object, the Stack header, the callable storage of Create(F) and
// the frames; at the bottom an optional PROT_NONE guard page. Also the
// guard-page overflow report (a SIGSEGV handler on a per-thread alternate
// signal stack) and the live-stack cap derived from vm.max_map_count.
//
// Thread safety: AllocateCoroutine()/FreeCoroutine() are thread-safe (the
// live count is atomic); a Stack belongs to whoever holds its coroutine.

#ifndef AIOCO_COROUTINE_INTERNAL_STACK_H_
#define AIOCO_COROUTINE_INTERNAL_STACK_H_

#include "coroutine/internal/context_config.h"  // first: selects the backend

#include <csetjmp>
#include <cstddef>

#include "absl/status/statusor.h"
#include "coroutine/coroutine.h"

namespace aioco {
namespace coroutine_internal {

struct ThreadState;

struct Stack {
  char* map_base = nullptr;  // start of the mapping (the guard page if any)
  size_t map_size = 0;
  char* lo = nullptr;        // lowest usable byte (just above the guard)
  char* top = nullptr;       // frames and callable storage grow down from here
  size_t stack_size = 0;     // usable bytes requested (page-rounded)
  bool guarded = false;
  bool pooled = false;       // default options: lives in the pools
  // Lowest address the previous run may have left ASan poison above.
  char* dirty_low = nullptr;
  // Inline-asm backend: the frame top the current start frame was prepared
  // below (nullptr: none yet). A finished run parks in CoroutineStart()'s
  // loop below it, so a reuse whose callable storage ends at or above it
  // resumes that loop instead of preparing a new frame.
  char* start_top = nullptr;
#if defined(AIOCO_CONTEXT_UCONTEXT)
  sigjmp_buf env;               // where a switch to this coroutine lands
  sigjmp_buf* creator_env = nullptr;  // used while the context is created
  void* creator_fiber = nullptr;      // TSan fiber of the creator, likewise
  size_t uc_reserve = 0;        // bytes above the trampoline frame
  bool uc_ready = false;        // the trampoline loop can be re-entered
#endif
};

// Allocates a stack as `options` says, with a fresh Coroutine at its top.
// ResourceExhausted (naming vm.max_map_count or the errno) on failure.
absl::StatusOr<Coroutine*> AllocateCoroutine(const CoroutineOptions& options,
                                             bool pooled);

// Unmaps `co`'s stack (and `co` with it). `co` must not be running.
void FreeCoroutine(Coroutine* co);

// vm.max_map_count as read once at startup (0 if unknown).
size_t MaxMapCount();

// The cap on live guarded stacks, and how many are live now.
size_t LiveGuardedCap();
size_t LiveGuardedStacks();

// Test hook: lowers (or, with 0, restores) the live guarded-stack cap.
void SetLiveGuardedCapForTesting(size_t cap);

// Per-thread set-up for threads that run coroutines: an alternate signal
// stack for the overflow handler (unless the thread already has one).
void InstallThreadAltStack(ThreadState* ts);
void FreeThreadAltStack(ThreadState* ts);

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // AIOCO_COROUTINE_INTERNAL_STACK_H_
