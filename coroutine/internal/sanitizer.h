// -----------------------------------------------------------------------------
// File: coroutine/internal/sanitizer.h
// -----------------------------------------------------------------------------
//
// Thin wrappers over the AddressSanitizer and ThreadSanitizer fiber
// interfaces, compiled to nothing in builds without them.
//
// Thread safety: each call concerns the calling thread's current stack or
// fiber only. The TSan wrappers are always_inline: the TSan runtime keeps a
// shadow call stack per fiber, and a switch made from inside an extra
// (instrumented) helper frame would pop that frame on the wrong fiber.

#ifndef AIOCO_COROUTINE_INTERNAL_SANITIZER_H_
#define AIOCO_COROUTINE_INTERNAL_SANITIZER_H_

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define AIOCO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AIOCO_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define AIOCO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AIOCO_TSAN 1
#endif
#endif

#if defined(AIOCO_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(AIOCO_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

#define AIOCO_SAN_ALWAYS_INLINE inline __attribute__((always_inline))

// For functions that never return to their caller (coroutine entry frames):
// TSan would otherwise keep their frames on its shadow call stack forever.
#if defined(AIOCO_TSAN)
#define AIOCO_NO_SANITIZE_THREAD __attribute__((no_sanitize("thread")))
#else
#define AIOCO_NO_SANITIZE_THREAD
#endif

namespace aioco {
namespace coroutine_internal {

// True in builds where every switch must be announced to a sanitizer.
#if defined(AIOCO_ASAN) || defined(AIOCO_TSAN)
inline constexpr bool kSanitizedSwitches = true;
#else
inline constexpr bool kSanitizedSwitches = false;
#endif

// --- AddressSanitizer --------------------------------------------------------

// Before switching to the stack [bottom, bottom+size). `fake_stack_save` is
// nullptr when the current stack is being abandoned for good (a finished
// coroutine), so ASan can release its fake frames.
AIOCO_SAN_ALWAYS_INLINE void AsanStartSwitch(void** fake_stack_save,
                                             const void* bottom, size_t size) {
#if defined(AIOCO_ASAN)
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
  (void)fake_stack_save, (void)bottom, (void)size;
#endif
}

// After landing on a stack. Reports the stack we came from.
AIOCO_SAN_ALWAYS_INLINE void AsanFinishSwitch(void* fake_stack_save,
                                              const void** bottom_old,
                                              size_t* size_old) {
#if defined(AIOCO_ASAN)
  __sanitizer_finish_switch_fiber(fake_stack_save, bottom_old, size_old);
#else
  (void)fake_stack_save;
  *bottom_old = nullptr;
  *size_old = 0;
#endif
}

inline void AsanUnpoison(const void* addr, size_t size) {
#if defined(AIOCO_ASAN)
  __asan_unpoison_memory_region(addr, size);
#else
  (void)addr, (void)size;
#endif
}

// --- ThreadSanitizer ---------------------------------------------------------

AIOCO_SAN_ALWAYS_INLINE void* TsanCurrentFiber() {
#if defined(AIOCO_TSAN)
  return __tsan_get_current_fiber();
#else
  return nullptr;
#endif
}

AIOCO_SAN_ALWAYS_INLINE void* TsanCreateFiber() {
#if defined(AIOCO_TSAN)
  return __tsan_create_fiber(0);
#else
  return nullptr;
#endif
}

AIOCO_SAN_ALWAYS_INLINE void TsanDestroyFiber(void* fiber) {
#if defined(AIOCO_TSAN)
  __tsan_destroy_fiber(fiber);
#else
  (void)fiber;
#endif
}

// Flags 0: the switch synchronises (happens-before) the two fibers, as the
// hand-over of a coroutine between its enterer and itself does.
AIOCO_SAN_ALWAYS_INLINE void TsanSwitchToFiber(void* fiber) {
#if defined(AIOCO_TSAN)
  __tsan_switch_to_fiber(fiber, 0);
#else
  (void)fiber;
#endif
}

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // AIOCO_COROUTINE_INTERNAL_SANITIZER_H_
