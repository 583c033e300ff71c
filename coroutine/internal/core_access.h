// -----------------------------------------------------------------------------
// File: coroutine/internal/core_access.h
// -----------------------------------------------------------------------------
//
// CoreAccess: the coroutine core's own view of Coroutine's private fields,
// shared by coroutine.cc, the stack allocator, the pools and the context
// backends. Not used outside //coroutine.
//
// Thread safety: fields belong to whoever holds the coroutine (the thread
// running or entering it, or the pool it sits in).

// Outside the guard: coroutine.h includes this header (through
// inline_switch.h) after defining Coroutine, so whichever of the two a
// translation unit includes first, Coroutine is complete below.
#include "coroutine/coroutine.h"

#ifndef AIOCO_COROUTINE_INTERNAL_CORE_ACCESS_H_
#define AIOCO_COROUTINE_INTERNAL_CORE_ACCESS_H_

#include <cstddef>
#include <cstdint>

#include "coroutine/coroutine.h"

namespace aioco {
namespace coroutine_internal {

// What a switch tells the context it lands in (QEMU's CoroutineAction).
enum Action : intptr_t {
  kActionEnter = 1,
  kActionYield = 2,
  kActionTerminate = 3,
};

struct CoreAccess {
  // Offsets the inline-asm switch writes (inline_switch.h).
  static constexpr size_t kSpOffset = offsetof(Coroutine, sp_);
  static constexpr size_t kPcOffset = offsetof(Coroutine, pc_);
  static constexpr size_t kFpOffset = offsetof(Coroutine, fp_);
  static constexpr size_t kMxcsrOffset = offsetof(Coroutine, mxcsr_);
  static constexpr size_t kFpucwOffset = offsetof(Coroutine, fpucw_);

  static Coroutine* New(void* where) { return ::new (where) Coroutine(); }
  static void*& sp(Coroutine* co) { return co->sp_; }
  static void*& pc(Coroutine* co) { return co->pc_; }
  static void*& fp(Coroutine* co) { return co->fp_; }
  static void*& backend(Coroutine* co) { return co->backend_; }
  static Stack*& stack(Coroutine* co) { return co->stack_; }
  static Coroutine::Entry& entry(Coroutine* co) { return co->entry_; }
  static void*& opaque(Coroutine* co) { return co->opaque_; }
  static Coroutine*& caller(Coroutine* co) { return co->caller_; }
  static const void*& san_stack_bottom(Coroutine* co) { return co->san_stack_bottom_; }
  static size_t& san_stack_size(Coroutine* co) { return co->san_stack_size_; }
  static Coroutine*& queue_next(Coroutine* co) { return co->queue_next_; }
  static Coroutine*& wakeup_head(Coroutine* co) { return co->wakeup_head_; }
  static Coroutine*& wakeup_tail(Coroutine* co) { return co->wakeup_tail_; }
  static Coroutine*& scheduled_next(Coroutine* co) { return co->scheduled_next_; }
  static size_t& locks_held(Coroutine* co) { return co->locks_held_; }
  static Coroutine*& pool_next(Coroutine* co) { return co->pool_next_; }
  static void*& tsan_fiber(Coroutine* co) { return co->tsan_fiber_; }
  static std::atomic<AioContext*>& ctx(Coroutine* co) { return co->ctx_; }
  static std::atomic<const char*>& scheduled(Coroutine* co) { return co->scheduled_; }
};

static_assert(CoreAccess::kSpOffset == 0 && CoreAccess::kPcOffset == 8 &&
                  CoreAccess::kFpOffset == 16 &&
                  CoreAccess::kMxcsrOffset == 24 &&
                  CoreAccess::kFpucwOffset == 28,
              "inline_switch.h hard-codes these offsets");

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // AIOCO_COROUTINE_INTERNAL_CORE_ACCESS_H_
