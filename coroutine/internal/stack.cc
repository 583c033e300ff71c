// Coroutine stacks, the live guarded-stack cap and the overflow report.
//
// State:
//  * g_live_guarded (atomic): guarded stacks mapped now, in use or pooled.
//    Each costs two kernel mappings (the stack and its PROT_NONE guard), so
//    it is capped at (vm.max_map_count - 5000) / 2, leaving 5000 mappings for
//    the rest of the process (QEMU's reserve). Unguarded stacks merge with
//    their neighbours and are not counted.
//  * The SIGSEGV handler, installed once (process-wide) with the first
//    guarded stack, and the previous handler it chains to.
//  * Per thread (ThreadState): the alternate signal stack we installed.
//
// Allocation (AllocateCoroutine):
//   1. Reserve a slot in g_live_guarded (fail past the cap, naming it).
//   2. mmap the stack plus guard; mprotect the guard page to PROT_NONE.
//   3. Place the Coroutine object at the top and the Stack header below it.
// Overflow (OverflowHandler, on the alternate stack): if the fault address
// is in the guard page of the coroutine running on this thread, print
// "coroutine stack overflow" with its address and abort. Otherwise hand the
// fault to the previous handler, or restore the default action and return
// so the faulting instruction faults again (re-raise for sent signals).

#include "coroutine/internal/stack.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coroutine/internal/core_access.h"
#include "coroutine/internal/sanitizer.h"
#include "coroutine/internal/thread_state.h"

namespace aioco {
namespace coroutine_internal {
namespace {

constexpr size_t kMinStackSize = 16 * 1024;
constexpr size_t kReservedMappings = 5000;

std::atomic<size_t> g_live_guarded{0};
std::atomic<size_t> g_cap_override{0};
struct sigaction g_old_segv;
std::once_flag g_handler_once;

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

size_t ReadMaxMapCount() {
  FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r");
  if (f == nullptr) return 0;
  unsigned long long v = 0;
  int n = std::fscanf(f, "%llu", &v);
  std::fclose(f);
  return n == 1 ? static_cast<size_t>(v) : 0;
}

size_t DefaultCap() {
  size_t max = MaxMapCount();
  if (max == 0) return SIZE_MAX;  // unknown: leave it to mmap
  if (max > kReservedMappings) return (max - kReservedMappings) / 2;
  return max / 4;
}

// --- Async-signal-safe output ------------------------------------------------

void PutStr(char* buf, size_t* len, size_t cap, const char* s) {
  while (*s != '\0' && *len + 1 < cap) buf[(*len)++] = *s++;
}

void PutHex(char* buf, size_t* len, size_t cap, uintptr_t v) {
  char tmp[2 + 16];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  PutStr(buf, len, cap, "0x");
  while (n > 0 && *len + 1 < cap) buf[(*len)++] = tmp[--n];
}

void PutDec(char* buf, size_t* len, size_t cap, uintptr_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0 && *len + 1 < cap) buf[(*len)++] = tmp[--n];
}

// Not TSan-instrumented: a signal handler should not re-enter the TSan
// runtime, and TSan does not order a fiber's signal handler after the
// switch that started the fiber.
AIOCO_NO_SANITIZE_THREAD void OverflowHandler(int sig, siginfo_t* info,
                                              void* uctx) {
  int saved_errno = errno;
  ThreadState* ts = CurrentThreadState();
  Coroutine* co = ts->current;
  char* addr = static_cast<char*>(info->si_addr);
  if (co != nullptr && info->si_code > 0) {
    Stack* st = CoreAccess::stack(co);
    if (st != nullptr && st->guarded && addr >= st->map_base && addr < st->lo) {
      char buf[320];
      size_t len = 0;
      PutStr(buf, &len, sizeof(buf), "aioco: coroutine stack overflow: coroutine ");
      PutHex(buf, &len, sizeof(buf), reinterpret_cast<uintptr_t>(co));
      PutStr(buf, &len, sizeof(buf), " hit the guard page of its ");
      PutDec(buf, &len, sizeof(buf), st->stack_size);
      PutStr(buf, &len, sizeof(buf), "-byte stack [");
      PutHex(buf, &len, sizeof(buf), reinterpret_cast<uintptr_t>(st->lo));
      PutStr(buf, &len, sizeof(buf), ", ");
      PutHex(buf, &len, sizeof(buf),
             reinterpret_cast<uintptr_t>(st->map_base + st->map_size));
      PutStr(buf, &len, sizeof(buf), ") at ");
      PutHex(buf, &len, sizeof(buf), reinterpret_cast<uintptr_t>(addr));
      PutStr(buf, &len, sizeof(buf),
             "; use a larger CoroutineOptions::stack_size\n");
      ssize_t ignored = write(STDERR_FILENO, buf, len);
      (void)ignored;
      std::abort();
    }
  }
  errno = saved_errno;
  if ((g_old_segv.sa_flags & SA_SIGINFO) != 0) {
    if (g_old_segv.sa_sigaction != nullptr) {
      g_old_segv.sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (g_old_segv.sa_handler != SIG_DFL &&
             g_old_segv.sa_handler != SIG_IGN) {
    g_old_segv.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);
  if (info->si_code <= 0) raise(sig);
}

void InstallOverflowHandler() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = &OverflowHandler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_old_segv);
}

absl::Status CapError(size_t cap) {
  size_t max = MaxMapCount();
  return absl::ResourceExhaustedError(absl::StrCat(
      "too many live coroutines with guarded stacks: the cap is ", cap,
      " (derived from vm.max_map_count=", max,
      ": each guarded stack costs 2 mappings and ", kReservedMappings,
      " are left for the rest of the process); let coroutines finish, "
      "use CoroutineOptions::guard_page=false for massive fan-out, or raise "
      "vm.max_map_count"));
}

}  // namespace

size_t MaxMapCount() {
  static const size_t v = ReadMaxMapCount();
  return v;
}

size_t LiveGuardedCap() {
  size_t o = g_cap_override.load(std::memory_order_relaxed);  // a test knob
  if (o != 0) return o;
  static const size_t cap = DefaultCap();
  return cap;
}

size_t LiveGuardedStacks() {
  return g_live_guarded.load(std::memory_order_relaxed);  // statistics only
}

void SetLiveGuardedCapForTesting(size_t cap) {
  g_cap_override.store(cap, std::memory_order_relaxed);  // a test knob
}

absl::StatusOr<Coroutine*> AllocateCoroutine(const CoroutineOptions& options,
                                             bool pooled) {
  const size_t page = PageSize();
  size_t usable = std::max(options.stack_size, kMinStackSize);
  usable = (usable + page - 1) & ~(page - 1);
  const bool guarded = options.guard_page;
  const size_t guard = guarded ? page : 0;
  const size_t map_size = usable + guard;

  if (guarded) {
    std::call_once(g_handler_once, &InstallOverflowHandler);
    size_t cap = LiveGuardedCap();
    // Relaxed: a counter with no data attached; the mmap below is the
    // resource it accounts for.
    size_t prev = g_live_guarded.fetch_add(1, std::memory_order_relaxed);
    if (prev >= cap) {
      g_live_guarded.fetch_sub(1, std::memory_order_relaxed);  // as above
      return CapError(cap);
    }
  }

  void* mem = mmap(nullptr, map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1,
                   0);
  if (mem == MAP_FAILED) {
    int err = errno;
    if (guarded) g_live_guarded.fetch_sub(1, std::memory_order_relaxed);
    return absl::ResourceExhaustedError(
        absl::StrCat("mmap of a ", map_size, "-byte coroutine stack failed: ",
                     std::strerror(err),
                     err == ENOMEM ? " (out of memory or vm.max_map_count "
                                     "mappings)"
                                   : ""));
  }
  char* base = static_cast<char*>(mem);
  if (guarded && mprotect(base, guard, PROT_NONE) != 0) {
    int err = errno;
    munmap(base, map_size);
    g_live_guarded.fetch_sub(1, std::memory_order_relaxed);  // as above
    return absl::ResourceExhaustedError(absl::StrCat(
        "could not set up a coroutine stack guard page: ", std::strerror(err),
        " (the process is probably at vm.max_map_count mappings)"));
  }

  char* end = base + map_size;
  auto align_down = [](char* p, size_t a) {
    return reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(p) &
                                   ~(uintptr_t{a} - 1));
  };
  char* co_at = align_down(end - sizeof(Coroutine), 64);
  char* st_at = align_down(co_at - sizeof(Stack), 64);
  Stack* st = ::new (st_at) Stack();
  st->map_base = base;
  st->map_size = map_size;
  st->lo = base + guard;
  st->top = st_at;
  st->stack_size = usable;
  st->guarded = guarded;
  st->pooled = pooled;
  st->dirty_low = st->top;
  Coroutine* co = CoreAccess::New(co_at);
  CoreAccess::stack(co) = st;
  return co;
}

void FreeCoroutine(Coroutine* co) {
  Stack* st = CoreAccess::stack(co);
  if (void* fiber = CoreAccess::tsan_fiber(co)) TsanDestroyFiber(fiber);
  char* base = st->map_base;
  size_t size = st->map_size;
  bool guarded = st->guarded;
  // Shadow memory outlives the mapping: leave none of our poison behind.
  AsanUnpoison(base, size);
  munmap(base, size);
  if (guarded) {
    g_live_guarded.fetch_sub(1, std::memory_order_relaxed);  // see Allocate
  }
}

void InstallThreadAltStack(ThreadState* ts) {
  stack_t old;
  if (sigaltstack(nullptr, &old) != 0) return;
  if ((old.ss_flags & SS_DISABLE) == 0) return;  // the thread has one
  size_t size = 64 * 1024;
  long min = sysconf(_SC_SIGSTKSZ);
  if (min > 0 && static_cast<size_t>(min) * 4 > size) size = min * 4;
  size = (size + PageSize() - 1) & ~(PageSize() - 1);
  void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;  // overflows then die without the report
  stack_t ss;
  ss.ss_sp = mem;
  ss.ss_size = size;
  ss.ss_flags = 0;
  if (sigaltstack(&ss, nullptr) != 0) {
    munmap(mem, size);
    return;
  }
  ts->altstack = mem;
  ts->altstack_size = size;
}

void FreeThreadAltStack(ThreadState* ts) {
  if (ts->altstack == nullptr) return;
  stack_t cur;
  if (sigaltstack(nullptr, &cur) == 0 && cur.ss_sp == ts->altstack &&
      (cur.ss_flags & SS_ONSTACK) == 0) {
    stack_t off;
    std::memset(&off, 0, sizeof(off));
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
    munmap(ts->altstack, ts->altstack_size);
  }
  ts->altstack = nullptr;
  ts->altstack_size = 0;
}

}  // namespace coroutine_internal
}  // namespace aioco
