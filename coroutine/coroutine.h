// -----------------------------------------------------------------------------
// File: coroutine.h
// -----------------------------------------------------------------------------
//
// Coroutine: a stackful coroutine with a pooled, guard-paged stack.
//
// Thread safety: a Coroutine runs on one thread at a time. Enter() runs it on
//   the calling thread; a yielded coroutine may be entered again from another
//   thread (that is how //aio moves coroutines between contexts), provided the
//   hand-over is synchronised (CoWake()/AioContext::CoSchedule() do that).
//   Create(), Self(), InCoroutine(), pool tuning and stats are thread-safe.
// Context: Yield() is coroutine-only; calling it elsewhere aborts.
// Lifetime: a coroutine returns to its thread's pool when its entry function
//   returns; the Coroutine* must not be used after that.
//
// Entering is iterative, not recursive: wake-ups queued while a coroutine runs
// (see coroutine/internal/access.h) are entered by the outermost Enter() loop
// after the waker yields, so chains of wake-ups never grow the host stack.
//
// Misuse aborts with a message naming it: entering a coroutine that is running
// or already scheduled, yielding outside a coroutine, a coroutine finishing
// while it holds a coroutine lock. Overflowing a coroutine stack into its guard
// page prints "coroutine stack overflow" and aborts.
//
// Stacks: 1 MiB of virtual memory by default (only touched pages cost), with a
// guard page, pooled per thread and globally (see IncPoolSize()). Other sizes,
// or unguarded stacks for massive fan-out, through CoroutineOptions. Each
// guarded stack costs two kernel mappings, so at most MaxLiveGuardedStacks()
// exist at once; past that TryCreate() returns ResourceExhausted and Create()
// aborts, both naming vm.max_map_count.
//
// Floating-point control state: on x86-64 the MXCSR and x87 control words
// are NOT saved per coroutine by default (as with Photon, marl and QEMU's
// sigsetjmp switch): coroutines share the control words of the thread they
// run on, so a coroutine that changes the rounding mode or exception masks
// must restore them before it yields or returns, or its caller (and the next
// coroutine the thread runs) sees the change. Building with
// --define=aioco_fp_control=coroutine saves and restores them on every
// switch, as the ABI's callee-saved rule has it (a mode set inside a
// coroutine then never leaks, and comes back when it resumes); that costs
// about 6 ns per enter/yield round trip on the machines measured. A new
// coroutine starts with the control words of whoever first enters it. The
// AArch64 assembly switch always saves FPCR per coroutine; --config=ucontext
// never does.
//
// On x86-64 (outside sanitizer builds) Enter() and Yield() are inlined: the
// switch is an asm statement, so each call site saves only its live
// registers (coroutine/internal/inline_switch.h).

#ifndef AIOCO_COROUTINE_COROUTINE_H_
#define AIOCO_COROUTINE_COROUTINE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include "absl/status/statusor.h"
#include "coroutine/internal/context_config.h"

// Enter() and Yield() are inline where the inline-asm switch is used.
#if defined(AIOCO_CONTEXT_INLINE_ASM)
#define AIOCO_COROUTINE_SWITCH_INLINE_ inline
#else
#define AIOCO_COROUTINE_SWITCH_INLINE_
#endif

namespace aioco {

class AioContext;
class Coroutine;

// -----------------------------------------------------------------------------
// CoroutineOptions
// -----------------------------------------------------------------------------
//
// Per-coroutine stack options. Coroutines created with the defaults come from
// (and return to) the pools; any other combination gets a stack of its own,
// unmapped when the coroutine finishes.
struct CoroutineOptions {
  // Usable stack size in bytes (rounded up to whole pages; at least 16 KiB).
  // Only touched pages cost memory.
  size_t stack_size = size_t{1} << 20;
  // A PROT_NONE guard page below the stack turns an overflow into the
  // "coroutine stack overflow" report. Each guarded stack costs two kernel
  // mappings, so the number of live guarded coroutines is capped from
  // vm.max_map_count. Unguarded stacks cost memory only (adjacent anonymous
  // mappings merge), for massive fan-out; an overflow then corrupts memory.
  bool guard_page = true;
};

namespace coroutine_internal {
struct Access;
struct CoreAccess;
struct Stack;
struct ThreadState;
// Placement storage for a callable entry: carved out of the top of the new
// coroutine's own stack, so Create(F) never touches the heap. `options` may
// be nullptr (the defaults).
Coroutine* CreateWithStorage(void (*entry)(void*), size_t size, size_t align,
                             void** storage,
                             const CoroutineOptions* options = nullptr);
absl::StatusOr<Coroutine*> TryCreateWithStorage(
    void (*entry)(void*), size_t size, size_t align, void** storage,
    const CoroutineOptions* options = nullptr);
}  // namespace coroutine_internal

// -----------------------------------------------------------------------------
// Coroutine
// -----------------------------------------------------------------------------
class Coroutine {
 public:
  using Entry = void (*)(void* opaque);

  // Coroutine::Create()
  //
  // Returns a new coroutine that will run `entry(opaque)` when first entered.
  // Takes a stack from the calling thread's pool (or allocates one). Does not
  // run it. Aborts with a message if no stack can be allocated (see
  // TryCreate()). Thread-safe.
  static Coroutine* Create(Entry entry, void* opaque);
  static Coroutine* Create(const CoroutineOptions& options, Entry entry,
                           void* opaque);

  // Coroutine::Create(F&&)
  //
  // Runs `fn()` (a callable, moved or copied in). The callable is stored on
  // the top of the coroutine's own stack: no heap allocation, whatever its
  // size (up to 1/4 of the stack; larger ones abort, or make TryCreate()
  // return InvalidArgument). It is destroyed when it returns.
  template <typename F, typename = std::enable_if_t<std::is_invocable_v<std::decay_t<F>&>>>
  static Coroutine* Create(F&& fn) {
    using Fn = std::decay_t<F>;
    void* storage = nullptr;
    Coroutine* co = coroutine_internal::CreateWithStorage(
        &RunCallable<Fn>, sizeof(Fn), alignof(Fn), &storage);
    ::new (storage) Fn(std::forward<F>(fn));
    return co;
  }
  template <typename F, typename = std::enable_if_t<std::is_invocable_v<std::decay_t<F>&>>>
  static Coroutine* Create(const CoroutineOptions& options, F&& fn) {
    using Fn = std::decay_t<F>;
    void* storage = nullptr;
    Coroutine* co = coroutine_internal::CreateWithStorage(
        &RunCallable<Fn>, sizeof(Fn), alignof(Fn), &storage, &options);
    ::new (storage) Fn(std::forward<F>(fn));
    return co;
  }

  // Coroutine::TryCreate()
  //
  // Like Create() but returns an error instead of aborting when no stack can
  // be had: ResourceExhausted when the mapping cap (vm.max_map_count) or
  // memory is exhausted, with a message naming the cause.
  static absl::StatusOr<Coroutine*> TryCreate(Entry entry, void* opaque);
  static absl::StatusOr<Coroutine*> TryCreate(const CoroutineOptions& options,
                                              Entry entry, void* opaque);
  template <typename F, typename = std::enable_if_t<std::is_invocable_v<std::decay_t<F>&>>>
  static absl::StatusOr<Coroutine*> TryCreate(F&& fn) {
    using Fn = std::decay_t<F>;
    void* storage = nullptr;
    absl::StatusOr<Coroutine*> co = coroutine_internal::TryCreateWithStorage(
        &RunCallable<Fn>, sizeof(Fn), alignof(Fn), &storage);
    if (co.ok()) ::new (storage) Fn(std::forward<F>(fn));
    return co;
  }
  template <typename F, typename = std::enable_if_t<std::is_invocable_v<std::decay_t<F>&>>>
  static absl::StatusOr<Coroutine*> TryCreate(const CoroutineOptions& options,
                                              F&& fn) {
    using Fn = std::decay_t<F>;
    void* storage = nullptr;
    absl::StatusOr<Coroutine*> co = coroutine_internal::TryCreateWithStorage(
        &RunCallable<Fn>, sizeof(Fn), alignof(Fn), &storage, &options);
    if (co.ok()) ::new (storage) Fn(std::forward<F>(fn));
    return co;
  }

  // Coroutine::Self()
  //
  // The coroutine running on this thread, or nullptr outside any coroutine.
  static Coroutine* Self();

  // Coroutine::InCoroutine()
  static bool InCoroutine() { return Self() != nullptr; }

  // Coroutine::Yield()
  //
  // Coroutine-only. Switches back to whoever entered the running coroutine.
  static AIOCO_COROUTINE_SWITCH_INLINE_ void Yield();

  // Coroutine::Enter()
  //
  // Runs this coroutine on the calling thread until it yields or returns,
  // then runs any wake-ups it queued. The coroutine's aio_context() becomes
  // the calling thread's current context (see SetThreadAioContext()). Aborts
  // if the coroutine is already entered or is scheduled somewhere.
  AIOCO_COROUTINE_SWITCH_INLINE_ void Enter();

  // Coroutine::EnterIfInactive()
  //
  // Enter() unless entered() is true.
  void EnterIfInactive();

  // Coroutine::entered()
  //
  // True between Enter() and the matching Yield()/return, including while the
  // coroutine has itself entered a nested coroutine.
  bool entered() const { return caller_ != nullptr; }

  // Coroutine::aio_context()
  //
  // The context this coroutine was last entered in (nullptr if none).
  AioContext* aio_context() const {
    // Acquire: pairs with the release store in Enter().
    return ctx_.load(std::memory_order_acquire);
  }

  // Pool tuning, as QEMU's qemu_coroutine_inc/dec_pool_size: grows or
  // shrinks the global pool's limit (one limit for all domains together).
  // Thread-safe.
  static void IncPoolSize(unsigned n);
  static void DecPoolSize(unsigned n);

  // Coroutine::SetThreadPoolDomain()
  //
  // Applies to the calling thread; thread-safe. The global pool is split
  // into domains: full batches that overflow this thread's local pool go to
  // its domain's list, and the thread refills only from that list, so a
  // stack allocated and first touched in one domain is only reused there.
  // IoThreadGroup gives each thread its NUMA node's domain, which keeps
  // pooled stacks node-local memory. Domain 0 is every thread's default;
  // `domain` is taken modulo kMaxPoolDomains. Coroutines already in the
  // thread's local pool stay there.
  static constexpr unsigned kMaxPoolDomains = 64;
  static void SetThreadPoolDomain(unsigned domain);
  // The calling thread's pool domain. Thread-safe.
  static unsigned ThreadPoolDomain();

  // Coroutine::MaxLiveGuardedStacks()
  //
  // How many coroutines with guarded stacks may be alive at once (created
  // and not finished, plus pooled ones): (vm.max_map_count - 5000) / 2, as
  // each costs two mappings. Past it TryCreate() fails and Create() aborts.
  static size_t MaxLiveGuardedStacks();

  Coroutine(const Coroutine&) = delete;
  Coroutine& operator=(const Coroutine&) = delete;

 private:
  friend struct coroutine_internal::Access;
  friend struct coroutine_internal::CoreAccess;
  friend struct coroutine_internal::ThreadState;

  constexpr Coroutine() = default;
  ~Coroutine() = default;

  // The callable lives on the coroutine's stack, which never unwinds when
  // the coroutine finishes: destroy it explicitly, also if it throws (an
  // exception escaping a coroutine terminates the program anyway).
  template <typename Fn>
  static void RunCallable(void* storage) {
    Fn* fn = static_cast<Fn*>(storage);
    struct Destroy {
      Fn* fn;
      ~Destroy() { fn->~Fn(); }
    } destroy{fn};
    (*fn)();
  }

  // --- Switch state (owned by coroutine/internal) ---
  // The first five at fixed offsets (inline_switch.h, core_access.h).
  void* sp_ = nullptr;                 // saved stack pointer (asm backends)
  void* pc_ = nullptr;                 // resume address (inline asm)
  void* fp_ = nullptr;                 // saved rbp (inline asm)
  uint32_t mxcsr_ = 0;                 // saved control words (inline asm)
  uint16_t fpucw_ = 0;
  void* backend_ = nullptr;            // backend-specific state (ucontext)
  coroutine_internal::Stack* stack_ = nullptr;  // nullptr: a thread leader
  Entry entry_ = nullptr;
  void* opaque_ = nullptr;
  Coroutine* caller_ = nullptr;        // non-null while entered
  // Sanitizer view of a thread leader's stack (learned on its first switch).
  const void* san_stack_bottom_ = nullptr;
  size_t san_stack_size_ = 0;

  // --- Scheduling state (used by //aio and //locks through Access) ---
  // Written in Enter() (release) before anything publishes the coroutine.
  std::atomic<AioContext*> ctx_{nullptr};
  // Name of the function that scheduled this coroutine, or nullptr. Claimed
  // with a compare-exchange by whoever schedules it; cleared (release) just
  // before the scheduler enters it.
  std::atomic<const char*> scheduled_{nullptr};
  Coroutine* queue_next_ = nullptr;     // CoQueue membership / wake-up lists
  Coroutine* wakeup_head_ = nullptr;    // coroutines to enter after this one
  Coroutine* wakeup_tail_ = nullptr;    //   yields or terminates (FIFO)
  Coroutine* scheduled_next_ = nullptr; // AioContext's scheduled list
  size_t locks_held_ = 0;               // CoMutex/CoRwlock held count

  // --- Pool state ---
  Coroutine* pool_next_ = nullptr;
  void* tsan_fiber_ = nullptr;          // TSan fiber (tsan builds)
};

// -----------------------------------------------------------------------------
// Pool statistics
// -----------------------------------------------------------------------------
struct CoroutinePoolStats {
  size_t local_free;   // coroutines in this thread's pool now
  size_t global_free;  // coroutines in the global pool now (all domains)
  size_t max_global;   // the global pool's current limit
  size_t created;      // coroutines (stacks) newly allocated by this thread
  size_t reused;       // Create() calls on this thread served from a pool
};

// GetCoroutinePoolStats()
//
// This thread's local view plus the global pool. Thread-safe.
CoroutinePoolStats GetCoroutinePoolStats();

// GetCoroutinePoolDomainFree()
//
// Coroutines in the global list of the calling thread's pool domain, or of
// `domain` (taken modulo Coroutine::kMaxPoolDomains): part of
// CoroutinePoolStats::global_free; see Coroutine::SetThreadPoolDomain().
// Thread-safe.
size_t GetCoroutinePoolDomainFree();
size_t GetCoroutinePoolDomainFree(unsigned domain);

}  // namespace aioco

#include "coroutine/internal/inline_switch.h"  // IWYU pragma: export

#endif  // AIOCO_COROUTINE_COROUTINE_H_
