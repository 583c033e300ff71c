// IoThread.
//
// State: ctx_ (created by Create() in the creating thread, so creation errors
// surface there; used by the thread; destroyed by ~IoThread after the join),
// running_ (home thread only).
//
// Start-up, numbered:
//  1. Create() builds the context and starts the thread.
//  2. The thread names itself, pins itself if asked, reports the outcome
//     through a shared handshake, and on failure exits at once (Create()
//     joins it and returns the error).
//  3. It makes the context current and loops Poll(true) while running_.
// Shutdown:
//  1. ~IoThread schedules a one-shot BH that clears running_ in the thread:
//     the flag is only ever touched by the home thread, and the BH's own
//     Notify() wakes the loop, so the stop cannot be lost.
//  2. The Poll() that ran the BH returns; the loop exits; the thread unbinds
//     the context and ends. ~IoThread joins it, then destroys the context.

#include "aio/io_thread.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace aioco {

absl::StatusOr<std::unique_ptr<IoThread>> IoThread::Create(const IoThreadOptions& opts) {
  absl::StatusOr<std::unique_ptr<AioContext>> ctx = AioContext::Create(opts.aio);
  if (!ctx.ok()) return ctx.status();
  std::unique_ptr<IoThread> t(new IoThread(std::move(*ctx)));
  // Start-up handshake, shared by both threads (the new thread may still be
  // returning from Report() when Create() returns).
  struct Startup {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    absl::Status status;
    void Report(absl::Status s) {
      std::lock_guard<std::mutex> lock(mu);
      status = std::move(s);
      done = true;
      cv.notify_one();
    }
  };
  auto startup = std::make_shared<Startup>();
  IoThread* self = t.get();
  t->thread_ = std::thread([self, startup, opts] {
    if (!opts.name.empty()) {
      std::string name = opts.name.substr(0, 15);
      pthread_setname_np(pthread_self(), name.c_str());
    }
    if (opts.cpu >= 0) {
      if (opts.cpu >= CPU_SETSIZE) {
        startup->Report(absl::InvalidArgumentError(
            absl::StrCat("IoThread: cpu ", opts.cpu, " out of range")));
        return;
      }
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(opts.cpu, &set);
      int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      if (rc != 0) {
        startup->Report(absl::InvalidArgumentError(
            absl::StrCat("IoThread: cannot pin to cpu ", opts.cpu, ": ", strerror(rc))));
        return;
      }
    }
    AioContext::SetCurrent(self->ctx_.get());
    startup->Report(absl::OkStatus());
    self->Run();
  });
  absl::Status s;
  {
    std::unique_lock<std::mutex> lock(startup->mu);
    startup->cv.wait(lock, [&] { return startup->done; });
    s = startup->status;
  }
  if (!s.ok()) {
    t->thread_.join();
    return s;
  }
  return t;
}

void IoThread::Run() {
  AioContext* ctx = ctx_.get();
  while (running_) ctx->Poll(true);
  AioContext::SetCurrent(nullptr);
}

IoThread::~IoThread() {
  if (thread_.joinable()) {
    ctx_->ScheduleOneshot([this] { running_ = false; });
    thread_.join();
  }
  ctx_.reset();
}

}  // namespace aioco
