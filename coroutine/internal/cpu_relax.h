// -----------------------------------------------------------------------------
// File: coroutine/internal/cpu_relax.h
// -----------------------------------------------------------------------------
//
// CpuRelax(): the spin-wait hint (x86 PAUSE, Arm YIELD) used by the bounded
// spins of //aio (busy polling, waiting for callers to leave) and //locks
// (CoMutex, CoRwlock).
//
// Thread safety: thread-safe (touches no memory).

#ifndef AIOCO_COROUTINE_INTERNAL_CPU_RELAX_H_
#define AIOCO_COROUTINE_INTERNAL_CPU_RELAX_H_

namespace aioco {
namespace coroutine_internal {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // AIOCO_COROUTINE_INTERNAL_CPU_RELAX_H_
