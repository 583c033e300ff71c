// -----------------------------------------------------------------------------
// File: coroutine/internal/full_fence.h
// -----------------------------------------------------------------------------
//
// FullFence(): the sequentially consistent fence of the Dekker-style
// handshakes in //aio (Notify()/Poll(), AioWaitKick()/AioWaitWhile()) and
// //locks (CoMutex's hand-off token).
//
// Thread safety: thread-safe.
//
// ThreadSanitizer does not model std::atomic_thread_fence (GCC warns with
// -Wtsan), so under TSan the fence is a seq_cst read-modify-write of one
// shared word instead: both sides of a handshake then synchronise through
// that word's modification order, which TSan does understand. Elsewhere it
// is the plain fence.

#ifndef AIOCO_COROUTINE_INTERNAL_FULL_FENCE_H_
#define AIOCO_COROUTINE_INTERNAL_FULL_FENCE_H_

#include <atomic>

namespace aioco {
namespace coroutine_internal {

#if defined(__SANITIZE_THREAD__)
inline std::atomic<unsigned> tsan_fence_word{0};
inline void FullFence() { tsan_fence_word.fetch_add(1, std::memory_order_seq_cst); }
#else
inline void FullFence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
#endif

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // AIOCO_COROUTINE_INTERNAL_FULL_FENCE_H_
