// Embedding an AioContext in a plain poll() loop through EventFd().
//
// The program owns its event loop (here: poll() over the context's EventFd()
// and a pipe of its own). Whenever EventFd() is readable it calls
// ctx->Poll(false), which runs whatever became ready: bottom halves posted
// by another thread, timers, coroutines, fd handlers registered on the
// context. Nothing else is needed: the fd also follows the context's timers.
//
//   bazel run //examples:event_fd_poll

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "aio/aio_context.h"
#include "coroutine/coroutine.h"
#include "timers/clock.h"
#include "timers/timer.h"

int main() {
  using aioco::AioContext;
  using aioco::ClockNs;
  using aioco::ClockType;
  using aioco::Coroutine;

  auto created = AioContext::Create();
  if (!created.ok()) {
    std::fprintf(stderr, "AioContext::Create: %s\n", created.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<AioContext> ctx = std::move(*created);
  AioContext::SetCurrent(ctx.get());  // this thread is the context's home
  const int ctx_fd = ctx->EventFd();
  std::printf("embedding the %s-backed context through fd %d\n",
              std::string(aioco::FdMonitorKindName(ctx->fd_monitor())).c_str(), ctx_fd);

  // The program's own fd, unrelated to the context.
  int own[2];
  if (pipe2(own, O_NONBLOCK | O_CLOEXEC) != 0) return 1;

  // 1. A timer on the context ticks three times, 100 ms apart.
  int ticks = 0;
  std::unique_ptr<aioco::Timer> timer;
  timer = ctx->NewTimer(ClockType::kMonotonic, [&] {
    std::printf("timer tick %d\n", ++ticks);
    if (ticks < 3) timer->ModNs(ClockNs(ClockType::kMonotonic) + 100'000'000);
  });
  timer->ModNs(ClockNs(ClockType::kMonotonic) + 100'000'000);

  // 2. A coroutine waits for a worker thread, which wakes it with CoWake().
  bool coroutine_done = false;
  std::atomic<Coroutine*> waiter{nullptr};
  Coroutine* co = Coroutine::Create([&] {
    waiter.store(Coroutine::Self());
    Coroutine::Yield();  // resumed by the worker's CoWake(), on this thread
    std::printf("coroutine resumed in the home thread\n");
    coroutine_done = true;
  });
  co->Enter();

  // 3. A worker posts bottom halves and writes to the program's own pipe.
  std::thread worker([&] {
    for (int i = 0; i < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      ctx->ScheduleOneshot([i] { std::printf("bottom half %d from the worker\n", i); });
    }
    aioco::CoWake(waiter.load());
    char c = 'q';
    if (write(own[1], &c, 1) != 1) std::perror("write");
  });

  // The foreign loop.
  bool quit = false;
  while (!quit || ticks < 3 || !coroutine_done) {
    struct pollfd fds[2] = {{ctx_fd, POLLIN, 0}, {own[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) continue;  // EINTR
    if (fds[0].revents & POLLIN) ctx->Poll(false);
    if (fds[1].revents & POLLIN) {
      char c;
      while (read(own[0], &c, 1) == 1) quit = true;
      std::printf("own pipe: worker finished\n");
    }
  }
  worker.join();
  close(own[0]);
  close(own[1]);
  timer.reset();
  AioContext::SetCurrent(nullptr);
  std::printf("done\n");
  return 0;
}
