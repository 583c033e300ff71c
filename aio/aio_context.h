// -----------------------------------------------------------------------------
// File: aio/aio_context.h
// -----------------------------------------------------------------------------
//
// AioContext: a per-thread event loop in the style of QEMU's AioContext. It
// multiplexes fd handlers (through an FdMonitor backend: io_uring, epoll or
// poll), bottom halves, timers and coroutines scheduled from any thread.
// CoWake() / CoRescheduleSelf(): moving coroutines between contexts.
//
// Thread safety: as marked per method. "home thread" is the thread that runs
//   the context's Poll(); "thread-safe" methods may be called from any
//   thread at any time while the context exists.
// Memory ordering: everything a thread wrote before Notify(), ScheduleOneshot(),
//   BottomHalf::Schedule(), CoSchedule() or CoWake() is visible to the code
//   that call causes to run in the home thread.
// Lifetime: destroy a context in its home thread (or once no thread polls it)
//   after the work on it has finished. Destruction discards scheduled
//   one-shot callbacks without running them (their captures are destroyed),
//   removes fd handlers and detaches timers. It aborts, naming the problem,
//   if a coroutine is still scheduled on it or a BottomHalf was not deleted.
//   A context may be destroyed once no thread is inside a call on it. The
//   scheduling calls (CoWake(), CoEnter(), CoSchedule(), ScheduleOneshot(),
//   BottomHalf::Schedule()/ScheduleIdle()/Delete()) count for this only
//   until they have published their work: the work may run, and the owner
//   learn that it ran and destroy the context, while the scheduling thread
//   is still waking the loop; the destructor waits for such callers to leave
//   (a window of a few instructions, or one eventfd write). So a CoWake()
//   that returned has finished touching the context, and one whose
//   coroutine has run needs no further synchronisation with the owner.
//   Calls that publish nothing (Notify(), NewBh(), NewTimer()) need the
//   caller to keep the context alive for their whole duration.
//
// Wake-ups cost a system call only when the target loop is blocked, or about
// to block: Notify() writes the context's eventfd only if the home thread has
// announced (notify_me) that it will sleep. A loop that is running, or busy
// polling (AioContextOptions::poll_max_ns), is woken by a flag. A loop that
// has just handed work to another context polls briefly for the answer
// before it sleeps (AioContextOptions::reply_poll_ns, on by default), so both
// sides of a cross-thread exchange stay awake while it is in flight.

#ifndef AIOCO_AIO_AIO_CONTEXT_H_
#define AIOCO_AIO_AIO_CONTEXT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "aio/bottom_half.h"
#include "aio/fd_monitor_kind.h"
#include "coroutine/coroutine.h"
#include "timers/clock.h"
#include "timers/timer.h"

namespace aioco {

namespace aio_internal {
struct AioHandler;
struct HopNode;
struct BhSlice;
struct ContextState;
class FdMonitor;
class AioWaiter;
}  // namespace aio_internal

class TimerListGroup;

struct AioContextOptions {
  // kAuto: io_uring if it initialises here, else epoll.
  FdMonitorKind fd_monitor = FdMonitorKind::kAuto;
  // Adaptive busy polling before blocking (QEMU's poll-max-ns): the loop
  // spins up to this many ns for a wake-up before sleeping in the kernel;
  // the window adapts between 0 and poll_max_ns. 0 turns polling off.
  int64_t poll_max_ns = 0;
  // Factor the window grows by (0: 2) and shrinks by (0: reset to 0).
  int64_t poll_grow = 0, poll_shrink = 0;
  // Reply polling, independent of poll_max_ns: after this loop's thread
  // hands work to another context (CoSchedule, CoWake, CoRescheduleSelf, a
  // bottom half or ScheduleOneshot aimed at it), the loop spins up to this
  // many ns for a wake-up before it blocks, so that the answer of a
  // cross-thread exchange finds it awake: no eventfd write by the peer and
  // no sleeping-CPU wake-up here. The window adapts: it halves (down to
  // 1 us) each time no answer came in it and doubles (up to this ceiling)
  // each time one did. At most half the CPUs spin at once, process-wide; a
  // loop that finds no free slot yields the CPU once before it sleeps. With
  // the io_uring and epoll monitors the spin also watches the fds (about
  // every microsecond): one that becomes ready ends it, its handler runs at
  // once, and the next iteration spins for the answer again. With the poll
  // monitor, fd events that arrive during the spin are seen when it ends.
  // 0 turns it off.
  int64_t reply_poll_ns = 32000;
};

using IOHandler = void (*)(void* opaque);

// -----------------------------------------------------------------------------
// AioContext
// -----------------------------------------------------------------------------
class AioContext {
 public:
  // AioContext::Create()
  //
  // A new context using `opts.fd_monitor`. An explicit backend that cannot
  // initialise here (kernel, seccomp, AIOCO_DISABLE_IO_URING=1) is an error;
  // kAuto falls back from io_uring to epoll.
  static absl::StatusOr<std::unique_ptr<AioContext>> Create(const AioContextOptions& opts = {});

  ~AioContext();
  AioContext(const AioContext&) = delete;
  AioContext& operator=(const AioContext&) = delete;

  // AioContext::Current()
  //
  // The context whose loop runs on the calling thread (set by IoThread, by
  // SetCurrent(), and by Poll() for its duration), or nullptr. Safe to call
  // from coroutines that move between threads.
  static AioContext* Current();

  // AioContext::SetCurrent()
  //
  // Binds `ctx` (may be nullptr) to the calling thread as its current
  // context: the thread becomes ctx's home thread (qemu_set_current_aio_context).
  // A context that no thread has as its current one is "unattached": a plain
  // thread that calls AioWaitWhile() on it drives its loop for the wait.
  static void SetCurrent(AioContext* ctx);

  // AioContext::Poll()
  //
  // Home thread. Runs one loop iteration: waits (if `blocking`) until
  // something is ready, then runs ready bottom halves, fd handlers, timers
  // and scheduled coroutines. Returns true if any of them ran ("progress");
  // a wake-up by Notify() alone is not progress. Poll(true) with nothing to
  // do blocks until Notify(). May be called recursively from callbacks
  // (not from coroutines).
  bool Poll(bool blocking);

  // AioContext::Notify()
  //
  // Thread-safe. Makes a concurrent or the next Poll(true) return promptly.
  void Notify();

  // AioContext::SetFdHandler()
  //
  // Home thread. Calls io_read(opaque) while `fd` is readable (or has hung up
  // or failed) and io_write(opaque) while it is writable: level-triggered.
  // Replaces the fd's previous handlers; both nullptr removes them. The
  // handlers of one fd never run concurrently or recursively for the same
  // readiness. Aborts if the backend refuses the fd (e.g. it is not open).
  void SetFdHandler(int fd, IOHandler io_read, IOHandler io_write, void* opaque);

  // AioContext::NewBh()
  //
  // Thread-safe. A new, unscheduled bottom half (see bottom_half.h).
  BottomHalf* NewBh(absl::AnyInvocable<void()> cb, absl::string_view name);

  // AioContext::ScheduleOneshot()
  //
  // Thread-safe. Runs `cb` once in the home thread's next Poll(); no handle.
  void ScheduleOneshot(absl::AnyInvocable<void()> cb);

  // AioContext::CoSchedule()
  //
  // Thread-safe. Enters `co` (which must be yielded, or about to yield in
  // another context) in the home thread, in FIFO order with other
  // schedulings. Aborts naming the first scheduler if `co` is already
  // scheduled somewhere.
  void CoSchedule(Coroutine* co);

  // AioContext::CoEnter()
  //
  // Thread-safe. If this is the caller's context: enters `co` now, or, from
  // inside a coroutine, right after the caller yields (no stack growth).
  // Otherwise CoSchedule(co).
  void CoEnter(Coroutine* co);

  // AioContext::NewTimer()
  //
  // Thread-safe. A timer on `clock` whose callback runs in the home thread.
  std::unique_ptr<Timer> NewTimer(ClockType clock, absl::AnyInvocable<void()> cb);

  // AioContext::fd_monitor()
  //
  // The fd-readiness backend in use (never kAuto).
  FdMonitorKind fd_monitor() const;

  // AioContext::EventFd()
  //
  // Home thread. A pollable fd (epoll instance) for embedding this context in
  // a foreign event loop (glib, libuv, asio, plain poll()): it is readable
  // whenever Poll(false) would make progress (fd handler ready, bottom half
  // or coroutine scheduled, timer expired); it may also be readable
  // spuriously. The foreign loop polls it and calls Poll(false) when it is
  // readable. The first call switches the context to embedded mode, in which
  // every Notify() writes the context's eventfd. Owned by the context.
  int EventFd() const;

  // AioContext::SetPollParams()
  //
  // Home thread. Changes the adaptive busy-polling parameters (see
  // AioContextOptions) and resets the current window to 0.
  void SetPollParams(int64_t max_ns, int64_t grow, int64_t shrink);

  // AioContext::poll_ns()
  //
  // Home thread. The current busy-polling window, in ns (diagnostics).
  int64_t poll_ns() const { return poll_ns_; }

  // AioContext::reply_poll_ns()
  //
  // Home thread. The current reply-polling window, in ns (diagnostics; see
  // AioContextOptions::reply_poll_ns).
  int64_t reply_poll_ns() const { return reply_ns_; }

 private:
  friend class BottomHalf;
  friend class aio_internal::AioWaiter;
  friend void CoWake(Coroutine* co);
  friend void CoRescheduleSelf(AioContext* target);

  explicit AioContext(const AioContextOptions& opts);
  absl::Status Init();

  // Bottom halves (bottom_half.cc).
  void PushBh(BottomHalf* bh);
  bool BhPoll();
  void FreeBh(BottomHalf* bh);
  BottomHalf* NewBhInternal(absl::AnyInvocable<void()> cb, std::string name, bool registered);
  int64_t BhTimeout();
  void DestroyBhs();

  // Fd handlers.
  void RemoveHandler(aio_internal::AioHandler* h);
  void ReleaseHandler(aio_internal::AioHandler* h);
  bool DispatchHandlers(aio_internal::AioHandler* ready_head, bool* notifier_fired);
  void FreeDeletedHandlers();

  // Loop steps.
  int64_t ComputeTimeout();
  bool BusyPoll(int64_t start, int64_t max_ns, int64_t* now, bool* fds_ready);
  void AdjustPollTime(int64_t block_ns);
  void AdjustReplyPollTime(bool answered);
  // Called on the sender's own context when its thread hands work to
  // another context: the next blocking Poll() spins for the answer first.
  void NoteWorkSent() {
    // Relaxed: a hint read and cleared by this same (home) thread in Poll();
    // atomic only so that a misbound thread cannot make it a data race.
    if (!reply_pending_.load(std::memory_order_relaxed)) {
      reply_pending_.store(true, std::memory_order_relaxed);
    }
  }
  void NotifyAccept();

  // Coroutines (co_schedule.cc).
  void ScheduleCoroutine(Coroutine* co, const char* who);
  void CoEnterImpl(Coroutine* co, const char* who);
  void RunScheduledCoroutines();
  void EnterNow(Coroutine* co);
  void PushHop(aio_internal::HopNode* node);
  void FlushHops();

  // Embedding (EventFd()).
  void EmbedRearm();

  // Cross-thread calls in flight (see "Lifetime" above). A scheduling call
  // enters before it publishes work and leaves after its last access to the
  // context; ~AioContext waits until none is inside.
  void EnterCall() {
    // Relaxed: the increment is sequenced before the release operation that
    // publishes the work (the list push or the BH's flags fetch_or), which
    // the home thread acquires before running it; any thread that learns the
    // work ran therefore happens after the increment, and its acquire load
    // in WaitForCallers() reads it or the matching decrement.
    callers_.fetch_add(1, std::memory_order_relaxed);
  }
  void LeaveCall() {
    // Release: orders every access of the call to this context before the
    // decrement; pairs with the acquire load in WaitForCallers().
    callers_.fetch_sub(1, std::memory_order_release);
  }
  void WaitForCallers();

  // --- Written by any thread (wake-up path), read by the home thread. ---
  // Set by Notify(); cleared by the home thread in NotifyAccept().
  alignas(64) std::atomic<bool> notified_{false};
  // Lock-free LIFO of queued bottom halves (see bottom_half.cc).
  std::atomic<BottomHalf*> bh_head_{nullptr};
  // Lock-free LIFO of scheduled coroutines, linked via scheduled_next.
  std::atomic<Coroutine*> sched_head_{nullptr};
  // Scheduling calls between EnterCall() and LeaveCall(). On the line the
  // scheduler writes anyway (notified_, the lists): no extra line transfer.
  std::atomic<uint32_t> callers_{0};
  // Threads whose current context this is (SetCurrent(), Poll(), or an
  // AioWaitWhile() that adopted an unattached context). Claimed 0 -> 1 with a
  // compare-exchange by AioWaiter, so at most one plain thread adopts it.
  std::atomic<int> attached_{0};

  // --- Written by the home thread only, read by any thread. ---
  // Bit 0: embedded mode (EventFd() was called). Bits 1..31: number of
  // Poll() calls (nested) in their blocking phase, in steps of 2.
  alignas(64) std::atomic<uint32_t> notify_me_{0};

  // --- Home thread only. ---
  alignas(64) int notify_fd_ = -1;  // eventfd written by Notify()
  std::unique_ptr<aio_internal::FdMonitor> monitor_;
  aio_internal::AioHandler* notifier_handler_ = nullptr;
  int user_handlers_ = 0;      // registered fd handlers, notifier excluded
  int walking_ = 0;            // Poll() nesting depth
  int enter_depth_ = 0;        // EnterNow()/scheduled-coroutine nesting
  aio_internal::BhSlice* slice_head_ = nullptr;  // nested BhPoll() chain
  aio_internal::BhSlice* slice_tail_ = nullptr;
  aio_internal::HopNode* hop_head_ = nullptr;    // CoRescheduleSelf() queue
  aio_internal::HopNode* hop_tail_ = nullptr;
  BottomHalf* co_schedule_bh_ = nullptr;
  BottomHalf* hop_bh_ = nullptr;
  int64_t poll_max_ns_ = 0, poll_grow_ = 0, poll_shrink_ = 0;
  int64_t poll_ns_ = 0;        // adaptive busy-poll window
  int64_t reply_max_ns_ = 0;   // AioContextOptions::reply_poll_ns
  int64_t reply_ns_ = 0;       // adaptive reply-poll window
  std::atomic<bool> reply_pending_{false};  // see NoteWorkSent()
  std::unique_ptr<TimerListGroup> timers_;
  std::unique_ptr<aio_internal::ContextState> state_;  // cold state
  const AioContextOptions opts_;
};

// CoWake()
//
// Thread-safe. Resumes `co` in the context it last ran in (aio_co_wake):
// CoEnter() on that context. May be called before `co` has yielded only if
// `co` belongs to a different context than the caller's (it then runs once
// it yields). A coroutine that never ran in a context is entered directly.
void CoWake(Coroutine* co);

// CoRescheduleSelf()
//
// Coroutine-only, from a thread that runs an AioContext. Moves the running
// coroutine to `target`'s home thread: returns there. No-op if `target` is
// the current context. The hand-over is scheduled only once the coroutine
// has yielded, and costs no system call if `target`'s loop is awake.
void CoRescheduleSelf(AioContext* target);

}  // namespace aioco

#include "aio/aio_wait.h"     // IWYU pragma: export
#include "aio/thread_pool.h"  // IWYU pragma: export (CoRunInThreadPool)

#endif  // AIOCO_AIO_AIO_CONTEXT_H_
