// Coroutine core: create, enter (iteratively), yield, finish.
//
// State:
//  * ThreadState (per thread, reached only through the non-inlinable
//    co-TLS accessor): the running coroutine (`current`, nullptr on the
//    thread's own stack), the thread's AioContext, its leader
//    pseudo-coroutine (the switch target that stands for the thread's own
//    stack) and its local pool.
//  * Per coroutine: caller_ (non-null while entered), the wake-up list
//    (wakeup_head_/tail_, linked through queue_next_; only the coroutine
//    itself appends, while it runs), scheduled_/ctx_ (see access.h).
//
// Enter (EnterIn, QEMU's qemu_aio_coroutine_enter), on the entering thread:
//   1. pending = [co].
//   2. Pop `to`; abort if it is scheduled (naming who scheduled it) or
//      already entered ("re-entered recursively").
//   3. to->caller = the enterer; publish to->ctx (release); current = to.
//   4. Switch to `to`. It runs until it yields or finishes; nothing else can
//      switch back to us, so we resume on the same thread.
//   5. current = the enterer; prepend to's wake-up list to pending (depth
//      first: wake-ups issued by `to` run before older pending ones).
//   6. If `to` finished: recycle it (pool or unmap). Repeat from 2.
// Yield: caller = nullptr, switch to the old caller. After the switch the
//   coroutine may be on another thread: no thread-local state is reused.
// Finish: the entry returns to CoroutineStart(), which checks locks_held and
//   switches to the caller with kActionTerminate; the stack is not unwound.
//   With the inline-asm backend the finished run stays parked in
//   CoroutineStart()'s loop, and reusing the pooled coroutine resumes it
//   (Stack::start_top) instead of building a new start frame.
//
// With the inline-asm backend (x86-64 default) the common cases of Enter()
// and Yield() are inline in coroutine/internal/inline_switch.h: Enter()
// falls back to EnterSlow() (steps 1-6 here) when the thread is not set up
// or the coroutine is scheduled/entered (so the misuse aborts stay here),
// and to EnterFinish() after the switch when wake-ups were queued or the
// coroutine finished.
//
// Every switch announces itself to ASan (__sanitizer_start/finish_switch_
// fiber; a finishing coroutine passes no fake-stack slot so ASan frees it)
// and TSan (one fiber per stack, reused by each run).

#include "coroutine/coroutine.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coroutine/co_tls.h"
#include "coroutine/internal/access.h"
#include "coroutine/internal/context.h"
#include "coroutine/internal/core_access.h"
#include "coroutine/internal/pool.h"
#include "coroutine/internal/sanitizer.h"
#include "coroutine/internal/stack.h"
#include "coroutine/internal/thread_state.h"

namespace aioco {
namespace coroutine_internal {

// The per-thread state, under a fixed assembler name that the inline-asm
// backend's FastThreadState() reads with an initial-exec TLS sequence.
// Everything else reaches it through the non-inlinable CurrentThreadState().
constinit thread_local ThreadState t_thread_state __asm__(
    "aioco_coroutine_thread_state");

namespace {

constexpr size_t kDefaultStackSize = CoroutineOptions().stack_size;

[[noreturn]] __attribute__((noinline, cold)) void Die(const std::string& msg) {
  std::fprintf(stderr, "aioco: %s\n", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

[[noreturn]] __attribute__((noinline, cold)) void DieScheduled(
    Coroutine* co, const char* scheduler) {
  Die(absl::StrCat("Coroutine::Enter: coroutine ",
                   absl::Hex(reinterpret_cast<uintptr_t>(co)),
                   " was already scheduled in '", scheduler,
                   "' (it must be entered by that scheduler, not directly)"));
}

[[noreturn]] __attribute__((noinline, cold)) void DieReentered(Coroutine* co) {
  Die(absl::StrCat("Coroutine::Enter: coroutine ",
                   absl::Hex(reinterpret_cast<uintptr_t>(co)),
                   " re-entered recursively (it is already running or has "
                   "entered the coroutine that is entering it)"));
}

[[noreturn]] __attribute__((noinline, cold)) void DieLocksHeld(Coroutine* co,
                                                              size_t n) {
  Die(absl::StrCat("coroutine ", absl::Hex(reinterpret_cast<uintptr_t>(co)),
                   " finished while holding ", n,
                   " coroutine lock(s) (CoMutex/CoRwlock): unlock before "
                   "returning"));
}

[[noreturn]] __attribute__((noinline, cold)) void DieBadAction(intptr_t a) {
  Die(absl::StrCat("Coroutine::Enter: bad switch action ", a));
}

// A thread_local with a destructor: constructed on first use by a thread
// that runs or pools coroutines, destroyed at that thread's exit.
struct ThreadReaper {
  bool armed = false;
  ~ThreadReaper() {
    ThreadState* ts = CurrentThreadState();
    PoolReleaseLocal(ts);
    FreeThreadAltStack(ts);
  }
};
thread_local ThreadReaper t_reaper;

// The calling thread's state, for code that does not switch before it is
// done with it: inline where the backend provides an asm TLS read.
AIOCO_SAN_ALWAYS_INLINE ThreadState* ThisThreadState() {
#if defined(AIOCO_CONTEXT_INLINE_ASM)
  return FastThreadState();
#else
  return CurrentThreadState();
#endif
}

// --- Switching --------------------------------------------------------------

AIOCO_SAN_ALWAYS_INLINE void StackBounds(Coroutine* co, const void** bottom,
                                         size_t* size) {
  if (Stack* st = CoreAccess::stack(co)) {
    *bottom = st->lo;
    *size = static_cast<size_t>(st->top - st->lo);
  } else {
    *bottom = CoreAccess::san_stack_bottom(co);
    *size = CoreAccess::san_stack_size(co);
  }
}

// Called right after landing on a stack. `switcher` is who switched to us
// when it may be a thread leader: ASan reports the leader's stack bounds on
// its first switch out, and a later switch back to it needs them.
AIOCO_SAN_ALWAYS_INLINE void Land(void* fake_stack, Coroutine* switcher) {
  const void* bottom_old;
  size_t size_old;
  AsanFinishSwitch(fake_stack, &bottom_old, &size_old);
  if (switcher != nullptr && CoreAccess::stack(switcher) == nullptr &&
      bottom_old != nullptr) {
    CoreAccess::san_stack_bottom(switcher) = bottom_old;
    CoreAccess::san_stack_size(switcher) = size_old;
  }
}

// Suspends `from` and resumes `to`; returns the action of whoever resumes
// `from` later.
AIOCO_SAN_ALWAYS_INLINE intptr_t Switch(Coroutine* from, Coroutine* to,
                                        intptr_t action) {
  if constexpr (kSanitizedSwitches) {
    void* fake_stack = nullptr;
    const void* bottom;
    size_t size;
    StackBounds(to, &bottom, &size);
    AsanStartSwitch(action == kActionTerminate ? nullptr : &fake_stack, bottom,
                    size);
#if !defined(AIOCO_CONTEXT_UCONTEXT)
    // (The ucontext backend switches fibers itself, between its sigsetjmp()
    // and siglongjmp(), so TSan files the jump buffer under `from`.)
    TsanSwitchToFiber(CoreAccess::tsan_fiber(to));
#endif
    intptr_t ret = ContextSwap(from, to, action);
    // Whoever resumed `from`: the coroutine it entered, or (for a yielded
    // coroutine) its new caller.
    Land(fake_stack, ret == kActionEnter ? CoreAccess::caller(from) : nullptr);
    return ret;
  } else {
    return ContextSwap(from, to, action);
  }
}

AIOCO_SAN_ALWAYS_INLINE void Recycle(ThreadState* ts, Coroutine* co) {
  if (CoreAccess::stack(co)->pooled) {
    PoolPut(ts, co);
  } else {
    FreeCoroutine(co);
  }
}

// Steps 5-6 for `to`, which switched back with `ret`: its wake-ups go
// before `pending`; a finished coroutine is recycled. Returns the new
// pending head.
Coroutine* AfterRun(ThreadState* ts, Coroutine* to, intptr_t ret,
                    Coroutine* pending) {
  if (Coroutine* head = CoreAccess::wakeup_head(to)) {
    CoreAccess::queue_next(CoreAccess::wakeup_tail(to)) = pending;
    pending = head;
    CoreAccess::wakeup_head(to) = nullptr;
    CoreAccess::wakeup_tail(to) = nullptr;
  }
  if (ret == kActionTerminate) {
    Recycle(ts, to);
  } else if (__builtin_expect(ret != kActionYield, 0)) {
    DieBadAction(ret);
  }
  return pending;
}

// Steps 2-6 until nothing is pending (the chain is linked through
// queue_next).
void RunPending(ThreadState* ts, AioContext* ctx, Coroutine* pending) {
  Coroutine* const from = ts->current;
  Coroutine* const from_switch = from != nullptr ? from : &ts->leader;
  do {
    Coroutine* to = pending;
    // Acquire: pairs with the acq_rel compare-exchange that claims the
    // marker (AioContext::ScheduleCoroutine(), CoSleep's wake).
    const char* scheduled =
        CoreAccess::scheduled(to).load(std::memory_order_acquire);
    pending = CoreAccess::queue_next(to);
    if (__builtin_expect(scheduled != nullptr, 0)) DieScheduled(to, scheduled);
    if (__builtin_expect(CoreAccess::caller(to) != nullptr, 0)) {
      DieReentered(to);
    }
    CoreAccess::caller(to) = from_switch;
    // Release: publishes the context before anything publishes `to`; pairs
    // with the acquire load in Coroutine::aio_context() (CoWake()).
    CoreAccess::ctx(to).store(ctx, std::memory_order_release);
    ts->current = to;
    intptr_t ret = Switch(from_switch, to, kActionEnter);
    ts->current = from;
    pending = AfterRun(ts, to, ret, pending);
  } while (pending != nullptr);
}

void EnterLoop(ThreadState* ts, AioContext* ctx, Coroutine* co) {
  if (__builtin_expect(!ts->initialized, 0)) EnsureThreadInitialized(ts);
  CoreAccess::queue_next(co) = nullptr;
  RunPending(ts, ctx, co);
}

// Slow path of CreateImpl(): a new stack (or a refusal).
__attribute__((noinline)) Coroutine* CreateNew(ThreadState* ts,
                                               const CoroutineOptions* options,
                                               bool pooled,
                                               absl::Status* error) {
  absl::StatusOr<Coroutine*> fresh = AllocateCoroutine(
      options != nullptr ? *options : CoroutineOptions(), pooled);
  if (!fresh.ok()) {
    *error = fresh.status();
    return nullptr;
  }
  ++ts->pool.created;
  return *fresh;
}

__attribute__((noinline, cold)) Coroutine* RefuseCallable(
    size_t size, size_t stack_size, absl::Status* error) {
  *error = absl::InvalidArgumentError(absl::StrCat(
      "a ", size, "-byte callable does not fit a coroutine's ", stack_size,
      "-byte stack (at most a quarter of it may hold the callable)"));
  return nullptr;
}

// Readies a pooled coroutine for its next run.
AIOCO_SAN_ALWAYS_INLINE void ReusePooled(ThreadState* ts, Coroutine* co) {
  ++ts->pool.reused;
  // Relaxed: nobody else can see a pooled coroutine.
  CoreAccess::ctx(co).store(nullptr, std::memory_order_relaxed);
  if constexpr (kSanitizedSwitches) {
    // Frames abandoned when the previous run finished may have left ASan
    // redzone poison on the stack.
    Stack* st = CoreAccess::stack(co);
    AsanUnpoison(st->dirty_low, static_cast<size_t>(st->top - st->dirty_low));
    st->dirty_low = st->top;
  }
}

// Places the callable storage (if any) and the start frame.
AIOCO_SAN_ALWAYS_INLINE Coroutine* SetUpRun(Coroutine* co,
                                            Coroutine::Entry entry,
                                            void* opaque, size_t size,
                                            size_t align, void** storage) {
  char* frame_top = CoreAccess::stack(co)->top;
  if (size != 0) {
    size_t a = align < 16 ? 16 : align;
    uintptr_t p = (reinterpret_cast<uintptr_t>(frame_top) - size) &
                  ~(uintptr_t{a} - 1);
    frame_top = reinterpret_cast<char*>(p);
    *storage = frame_top;
    opaque = frame_top;
  }
  CoreAccess::entry(co) = entry;
  CoreAccess::opaque(co) = opaque;
  if constexpr (kSanitizedSwitches) {
    // One TSan fiber per stack: CoroutineStart() leaves no frame on TSan's
    // shadow call stack, so a finished run leaves the fiber as it found it.
    if (CoreAccess::tsan_fiber(co) == nullptr) {
      CoreAccess::tsan_fiber(co) = TsanCreateFiber();
    }
  }
#if defined(AIOCO_CONTEXT_INLINE_ASM)
  // A finished run of a pooled coroutine is parked in CoroutineStart()'s
  // loop, which calls the new entry when resumed: no new frame is needed
  // unless the callable storage reaches down into the parked frames.
  Stack* st = CoreAccess::stack(co);
  if (st->start_top == nullptr || frame_top < st->start_top) {
    ContextPrepare(co, frame_top);
    st->start_top = frame_top;
  }
#else
  ContextPrepare(co, frame_top);
#endif
  return co;
}

// The common case, default options with a coroutine in the local pool,
// without the error plumbing; nullptr if it does not apply.
AIOCO_SAN_ALWAYS_INLINE Coroutine* CreateFromLocalPool(Coroutine::Entry entry,
                                                       void* opaque,
                                                       size_t size,
                                                       size_t align,
                                                       void** storage) {
  if (__builtin_expect(size > kDefaultStackSize / 4, 0)) return nullptr;
  ThreadState* ts = ThisThreadState();
  PoolBatch* b = ts->pool.batches;
  if (__builtin_expect(b == nullptr || b->size == 0, 0)) return nullptr;
  Coroutine* co = PoolGet(ts);
  ReusePooled(ts, co);
  return SetUpRun(co, entry, opaque, size, align, storage);
}

inline Coroutine* CreateImpl(Coroutine::Entry entry, void* opaque,
                             size_t size, size_t align, void** storage,
                             const CoroutineOptions* options,
                             absl::Status* error) {
  const size_t stack_size =
      options != nullptr ? options->stack_size : kDefaultStackSize;
  if (__builtin_expect(size > stack_size / 4, 0)) {
    return RefuseCallable(size, stack_size, error);
  }
  ThreadState* ts = ThisThreadState();
  const bool pooled =
      options == nullptr ||
      (options->stack_size == kDefaultStackSize && options->guard_page);
  Coroutine* co = pooled ? PoolGet(ts) : nullptr;
  if (__builtin_expect(co != nullptr, 1)) {
    ReusePooled(ts, co);
  } else {
    co = CreateNew(ts, options, pooled, error);
    if (co == nullptr) return nullptr;
  }
  return SetUpRun(co, entry, opaque, size, align, storage);
}

[[noreturn]] __attribute__((noinline, cold)) void DieCreate(
    const absl::Status& error) {
  Die(absl::StrCat("Coroutine::Create: ", error.message()));
}

}  // namespace

__attribute__((noinline, noclone, used)) ThreadState* CurrentThreadState() {
  ThreadState* p = &t_thread_state;
  AIOCO_CO_TLS_LAUNDER_(p);
  return p;
}

[[noreturn]] __attribute__((noinline, cold)) void DieYieldOutside() {
  Die("Coroutine::Yield: called outside a coroutine (Yield() is "
      "coroutine-only)");
}

// The inline fast paths' way out (inline_switch.h); the out-of-line
// Enter() of the other backends.
__attribute__((noinline)) void EnterSlow(ThreadState* ts, Coroutine* co) {
  EnterLoop(ts, ts->aio_ctx, co);
}

namespace {
__attribute__((noinline)) void EnterFinishSlow(ThreadState* ts,
                                               AioContext* ctx, Coroutine* co,
                                               intptr_t action) {
  if (Coroutine* pending = AfterRun(ts, co, action, nullptr)) {
    RunPending(ts, ctx, pending);
  }
}
}  // namespace

// Kept small: finishing a coroutine with no wake-ups just pools it.
__attribute__((noinline)) void EnterFinish(ThreadState* ts, AioContext* ctx,
                                           Coroutine* co, intptr_t action) {
  if (__builtin_expect(action == kActionTerminate &&
                           CoreAccess::wakeup_head(co) == nullptr &&
                           CoreAccess::stack(co)->pooled,
                       1)) {
    PoolPut(ts, co);
    return;
  }
  EnterFinishSlow(ts, ctx, co, action);
}

void EnsureThreadInitialized(ThreadState* ts) {
  if (ts->initialized) return;
  ts->initialized = true;
  t_reaper.armed = true;  // registers the thread-exit cleanup
  ContextInitLeader(ts);
  if constexpr (kSanitizedSwitches) {
    CoreAccess::tsan_fiber(&ts->leader) = TsanCurrentFiber();
  }
  InstallThreadAltStack(ts);
}

// Not TSan-instrumented: it never returns, so an instrumented entry would
// leave a frame on the fiber's shadow call stack for every run.
AIOCO_NO_SANITIZE_THREAD void CoroutineStart(Coroutine* co, void* fake_stack) {
  if constexpr (kSanitizedSwitches) Land(fake_stack, CoreAccess::caller(co));
  for (;;) {
    CoreAccess::entry(co)(CoreAccess::opaque(co));
    if (size_t n = CoreAccess::locks_held(co)) DieLocksHeld(co, n);
    Coroutine* to = CoreAccess::caller(co);
    CoreAccess::caller(co) = nullptr;
    if constexpr (kSanitizedSwitches) {
      // Frames up to here stay on the stack: the next run unpoisons them.
      char* here = static_cast<char*>(__builtin_frame_address(0)) - 1024;
      Stack* st = CoreAccess::stack(co);
      st->dirty_low = here > st->lo ? here : st->lo;
    }
    // The .S backend never comes back (each use gets a new frame); the
    // inline-asm and ucontext ones do when the pooled coroutine is reused
    // without a new context.
    Switch(co, to, kActionTerminate);
  }
}

void EnterIn(AioContext* ctx, Coroutine* co) {
  EnterLoop(CurrentThreadState(), ctx, co);
}

void SetThreadAioContext(AioContext* ctx) { CurrentThreadState()->aio_ctx = ctx; }

AioContext* ThreadAioContext() { return CurrentThreadState()->aio_ctx; }

void QueueWakeup(Coroutine* self, Coroutine* co) {
  CoreAccess::queue_next(co) = nullptr;
  if (Coroutine* tail = CoreAccess::wakeup_tail(self)) {
    CoreAccess::queue_next(tail) = co;
  } else {
    CoreAccess::wakeup_head(self) = co;
  }
  CoreAccess::wakeup_tail(self) = co;
}

namespace {
__attribute__((noinline)) Coroutine* CreateOrDie(
    Coroutine::Entry entry, void* opaque, size_t size, size_t align,
    void** storage, const CoroutineOptions* options) {
  absl::Status error;
  Coroutine* co = CreateImpl(entry, opaque, size, align, storage, options,
                             &error);
  if (co == nullptr) DieCreate(error);
  return co;
}
}  // namespace

Coroutine* CreateWithStorage(void (*entry)(void*), size_t size, size_t align,
                             void** storage, const CoroutineOptions* options) {
  if (options == nullptr) {
    if (Coroutine* co =
            CreateFromLocalPool(entry, nullptr, size, align, storage)) {
      return co;
    }
  }
  return CreateOrDie(entry, nullptr, size, align, storage, options);
}

absl::StatusOr<Coroutine*> TryCreateWithStorage(
    void (*entry)(void*), size_t size, size_t align, void** storage,
    const CoroutineOptions* options) {
  absl::Status error;
  Coroutine* co =
      CreateImpl(entry, nullptr, size, align, storage, options, &error);
  if (co == nullptr) return error;
  return co;
}

}  // namespace coroutine_internal

using coroutine_internal::CreateImpl;
using coroutine_internal::CreateOrDie;
using coroutine_internal::CurrentThreadState;
using coroutine_internal::ThreadState;

Coroutine* Coroutine::Create(Entry entry, void* opaque) {
  if (Coroutine* co = coroutine_internal::CreateFromLocalPool(entry, opaque, 0,
                                                              0, nullptr)) {
    return co;
  }
  return coroutine_internal::CreateOrDie(entry, opaque, 0, 0, nullptr,
                                         nullptr);
}

Coroutine* Coroutine::Create(const CoroutineOptions& options, Entry entry,
                             void* opaque) {
  absl::Status error;
  Coroutine* co = CreateImpl(entry, opaque, 0, 0, nullptr, &options, &error);
  if (co == nullptr) coroutine_internal::DieCreate(error);
  return co;
}

absl::StatusOr<Coroutine*> Coroutine::TryCreate(Entry entry, void* opaque) {
  absl::Status error;
  Coroutine* co = CreateImpl(entry, opaque, 0, 0, nullptr, nullptr, &error);
  if (co == nullptr) return error;
  return co;
}

absl::StatusOr<Coroutine*> Coroutine::TryCreate(const CoroutineOptions& options,
                                                Entry entry, void* opaque) {
  absl::Status error;
  Coroutine* co = CreateImpl(entry, opaque, 0, 0, nullptr, &options, &error);
  if (co == nullptr) return error;
  return co;
}

Coroutine* Coroutine::Self() { return CurrentThreadState()->current; }

#if !defined(AIOCO_CONTEXT_INLINE_ASM)
void Coroutine::Yield() {
  ThreadState* ts = CurrentThreadState();
  Coroutine* self = ts->current;
  if (__builtin_expect(self == nullptr, 0)) {
    coroutine_internal::DieYieldOutside();
  }
  Coroutine* to = self->caller_;
  self->caller_ = nullptr;
  // A tail call in the assembly backend: the switch then resumes straight
  // into our caller with an indirect jump, and no `ret` crosses the switch
  // (a `ret` here would always miss the return stack buffer, which holds
  // the enterer's return addresses). Possibly on another thread afterwards.
  coroutine_internal::Switch(self, to, coroutine_internal::kActionYield);
}

void Coroutine::Enter() {
  coroutine_internal::EnterSlow(CurrentThreadState(), this);
}
#endif  // !AIOCO_CONTEXT_INLINE_ASM

void Coroutine::EnterIfInactive() {
  if (!entered()) Enter();
}

void Coroutine::IncPoolSize(unsigned n) {
  coroutine_internal::GlobalPoolAdjust(static_cast<long long>(n));
}

void Coroutine::DecPoolSize(unsigned n) {
  coroutine_internal::GlobalPoolAdjust(-static_cast<long long>(n));
}

size_t Coroutine::MaxLiveGuardedStacks() {
  return coroutine_internal::LiveGuardedCap();
}

void Coroutine::SetThreadPoolDomain(unsigned domain) {
  CurrentThreadState()->pool.domain = domain % kMaxPoolDomains;
}

unsigned Coroutine::ThreadPoolDomain() { return CurrentThreadState()->pool.domain; }

CoroutinePoolStats GetCoroutinePoolStats() {
  ThreadState* ts = CurrentThreadState();
  size_t local = 0;
  for (auto* b = ts->pool.batches; b != nullptr; b = b->next) local += b->size;
  CoroutinePoolStats s;
  s.local_free = local;
  s.global_free = coroutine_internal::GlobalPoolSize();
  s.max_global = coroutine_internal::GlobalPoolLimit();
  s.created = ts->pool.created;
  s.reused = ts->pool.reused;
  return s;
}

size_t GetCoroutinePoolDomainFree() {
  return GetCoroutinePoolDomainFree(CurrentThreadState()->pool.domain);
}

size_t GetCoroutinePoolDomainFree(unsigned domain) {
  return coroutine_internal::DomainPoolSize(domain);
}

}  // namespace aioco
