// -----------------------------------------------------------------------------
// File: aio/io_thread.h
// -----------------------------------------------------------------------------
//
// IoThread: an OS thread running one AioContext's loop (QEMU's IOThread).
//
// Thread safety: context() is thread-safe. Create and destroy an IoThread
//   from a thread other than its own.
// Lifetime: the destructor stops the loop through a bottom half (never a
//   racy flag plus notify: a notify that finds the loop between checking the
//   flag and announcing it will block would be lost), joins the thread, then
//   destroys the context (see AioContext's lifetime rules: finish the work on
//   it first).
//
//   auto t = IoThread::Create({.name = "io0"}).value();
//   t->context()->ScheduleOneshot([] { /* runs on io0 */ });

#ifndef AIOCO_AIO_IO_THREAD_H_
#define AIOCO_AIO_IO_THREAD_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "aio/aio_context.h"

namespace aioco {

struct IoThreadOptions {
  AioContextOptions aio;
  int cpu = -1;      // pin the thread to this CPU; -1 = no pinning
  std::string name;  // thread name (Linux keeps the first 15 characters)
};

// -----------------------------------------------------------------------------
// IoThread
// -----------------------------------------------------------------------------
class IoThread {
 public:
  // IoThread::Create()
  //
  // Creates the context, starts the thread and waits until it runs the loop
  // with the context current. Fails if the context cannot be created or the
  // CPU cannot be pinned (the thread is then joined).
  static absl::StatusOr<std::unique_ptr<IoThread>> Create(const IoThreadOptions& opts = {});

  ~IoThread();
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  AioContext* context() const { return ctx_.get(); }
  // The thread's id (for tests and diagnostics).
  std::thread::id thread_id() const { return thread_.get_id(); }

 private:
  explicit IoThread(std::unique_ptr<AioContext> ctx) : ctx_(std::move(ctx)) {}
  void Run();

  std::unique_ptr<AioContext> ctx_;
  std::thread thread_;
  bool running_ = true;  // home thread only: cleared by the stop BH
};

}  // namespace aioco

#endif  // AIOCO_AIO_IO_THREAD_H_
