// Embedding an AioContext in GLib's main loop through EventFd().
//
// A GLib unix-fd source watches the context's EventFd(); its callback runs
// ctx->Poll(false). The context's bottom halves, timers and coroutines then
// run inside g_main_loop_run(), next to ordinary GLib sources (a GLib
// timeout here). QEMU attaches its AioContext to GLib the same way, as a
// GSource.
//
//   bazel run //examples:event_fd_glib

#include <glib-unix.h>
#include <glib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "aio/aio_context.h"
#include "coroutine/coroutine.h"
#include "timers/clock.h"
#include "timers/timer.h"

namespace {

gboolean OnContextReady(gint fd, GIOCondition condition, gpointer opaque) {
  static_cast<aioco::AioContext*>(opaque)->Poll(false);
  return G_SOURCE_CONTINUE;
}

gboolean OnGlibTimeout(gpointer opaque) {
  std::printf("glib timeout source\n");
  return G_SOURCE_REMOVE;
}

}  // namespace

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
  AioContext::SetCurrent(ctx.get());

  GMainLoop* loop = g_main_loop_new(nullptr, FALSE);
  guint source = g_unix_fd_add(ctx->EventFd(), G_IO_IN, OnContextReady, ctx.get());
  g_timeout_add(50, OnGlibTimeout, nullptr);

  // A coroutine on the context: sleeps on a context timer, then hops work to
  // a worker thread and waits for its CoWake().
  std::atomic<Coroutine*> waiter{nullptr};
  std::unique_ptr<aioco::Timer> timer;
  Coroutine* co = Coroutine::Create([&] {
    Coroutine* self = Coroutine::Self();
    timer = ctx->NewTimer(ClockType::kMonotonic, [self] { aioco::CoWake(self); });
    timer->ModNs(ClockNs(ClockType::kMonotonic) + 100'000'000);
    Coroutine::Yield();
    std::printf("coroutine: timer fired inside the GLib loop\n");
    waiter.store(self);
    Coroutine::Yield();  // until the worker wakes us
    std::printf("coroutine: woken by the worker thread\n");
    ctx->ScheduleOneshot([loop] { g_main_loop_quit(loop); });
  });
  co->Enter();

  std::thread worker([&] {
    while (waiter.load() == nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ctx->ScheduleOneshot([] { std::printf("bottom half from the worker thread\n"); });
    aioco::CoWake(waiter.load());
  });

  g_main_loop_run(loop);
  worker.join();
  g_source_remove(source);
  g_main_loop_unref(loop);
  timer.reset();
  AioContext::SetCurrent(nullptr);
  std::printf("done\n");
  return 0;
}
