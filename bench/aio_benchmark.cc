// Event-loop benchmarks: aioco's AioContext/IoThread against Boost.Asio and
// plain threads, in one binary, side by side.
//
//   aio/hop_round_trip/{aioco,asio,std_condvar}
//       One coroutine hopping between two IoThreads with CoRescheduleSelf()
//       (A -> B -> A is one round trip); a handler posting itself alternately
//       to two io_contexts run by two threads; two threads ping-ponging a
//       turn flag under std::mutex + condition_variable. Time per round trip.
//       aioco runs with AioContextOptions' defaults, so a loop that just
//       handed the coroutine over polls briefly for its return
//       (reply_poll_ns); Asio's loops block in the kernel when idle.
//   aio/hop_round_trip_blocking/{aioco,asio}
//       The same with reply polling off (reply_poll_ns = 0): both loops
//       sleep in the kernel between hops, each hop wakes a sleeping thread.
//   aio/hop_round_trip_polling/{aioco,asio}
//       The same hop with busy polling before sleeping: IoThreads with
//       poll_max_ns = 32000 (adaptive), and Asio threads that poll() for up
//       to 32 us after their last handler before blocking in run_one().
//   aio/bh_schedule/{aioco,asio}
//       Throughput of a bottom half rescheduling itself on the caller's
//       context (Schedule() + Poll(false) + callback), against post() +
//       poll_one() on an io_context. Time per callback.
//   timers/arm_cancel/{aioco,asio}
//       Timer churn on a loop's own thread: re-arm one of 256 timers to a
//       pseudo-random far deadline and cancel another, per iteration;
//       against steady_timer expires_after()+async_wait() and cancel().
//   aio/fan_out/{aioco,asio}/N
//       N IoThreads (io_contexts), N coroutines (handlers) each hopping
//       round-robin over all N; items_per_second = cross-thread wake-ups per
//       second, for the 2..16 scaling curve.
//
// Multi-threaded benchmarks use real time.

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "aio/aio_context.h"
#include "aio/io_thread.h"
#include "benchmark/benchmark.h"
#include "coroutine/coroutine.h"
#include "timers/clock.h"
#include "timers/timer.h"

namespace {

using aioco::AioContext;
using aioco::ClockNs;
using aioco::ClockType;
using aioco::Coroutine;
using aioco::CoRescheduleSelf;
using aioco::IoThread;

constexpr int kBatch = 1000;            // round trips per measured batch
constexpr int64_t kPollMaxNs = 32000;   // busy-poll window of the polling runs

// --- helpers ---------------------------------------------------------------

// Count-down latch for the threads of a run.
using Latch = std::latch;

// reply_poll_ns < 0: AioContextOptions' default.
std::vector<std::unique_ptr<IoThread>> MakeIoThreads(int n, int64_t poll_max_ns,
                                                     int64_t reply_poll_ns = -1) {
  std::vector<std::unique_ptr<IoThread>> threads;
  for (int i = 0; i < n; ++i) {
    aioco::IoThreadOptions opts;
    opts.aio.poll_max_ns = poll_max_ns;
    if (reply_poll_ns >= 0) opts.aio.reply_poll_ns = reply_poll_ns;
    opts.name = "bench-io" + std::to_string(i);
    auto t = IoThread::Create(opts);
    if (!t.ok()) {
      std::fprintf(stderr, "IoThread::Create: %s\n", t.status().ToString().c_str());
      std::abort();
    }
    threads.push_back(std::move(*t));
  }
  return threads;
}

// N io_contexts, each run by its own thread until destruction. With
// `poll_ns` > 0 a thread busy-polls that long after its last handler before
// blocking.
class AsioThreads {
 public:
  AsioThreads(int n, int64_t poll_ns) : stop_(false) {
    for (int i = 0; i < n; ++i) {
      ios_.push_back(std::make_unique<boost::asio::io_context>(1));
      guards_.emplace_back(boost::asio::make_work_guard(*ios_.back()));
    }
    for (int i = 0; i < n; ++i) {
      boost::asio::io_context* io = ios_[i].get();
      threads_.emplace_back([this, io, poll_ns] {
        if (poll_ns <= 0) {
          io->run();
          return;
        }
        // Relaxed: a stop hint, paired with the store in ~AsioThreads();
        // io_context::stop() does the synchronisation.
        while (!stop_.load(std::memory_order_relaxed)) {
          if (io->poll() > 0) continue;
          const auto start = std::chrono::steady_clock::now();
          bool got = false;
          while (std::chrono::steady_clock::now() - start < std::chrono::nanoseconds(poll_ns)) {
            if (io->poll() > 0) {
              got = true;
              break;
            }
          }
          if (!got && io->run_one() == 0) break;  // stopped
        }
      });
    }
  }
  ~AsioThreads() {
    stop_.store(true);
    guards_.clear();
    for (auto& io : ios_) io->stop();
    for (auto& t : threads_) t.join();
  }
  boost::asio::io_context& io(int i) { return *ios_[i]; }

 private:
  std::atomic<bool> stop_;
  std::vector<std::unique_ptr<boost::asio::io_context>> ios_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

// --- hop round trip --------------------------------------------------------

void HopAioco(benchmark::State& state, int64_t poll_max_ns, int64_t reply_poll_ns) {
  auto io = MakeIoThreads(2, poll_max_ns, reply_poll_ns);
  AioContext* a = io[0]->context();
  AioContext* b = io[1]->context();
  while (state.KeepRunningBatch(kBatch)) {
    Latch done(1);
    a->CoSchedule(Coroutine::Create([a, b, &done] {
      for (int i = 0; i < kBatch; ++i) {
        CoRescheduleSelf(b);
        CoRescheduleSelf(a);
      }
      done.count_down();
    }));
    done.wait();
  }
  state.counters["round_trips_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// A handler that posts itself to the other io_context; A -> B -> A is one
// round trip.
struct AsioHop {
  boost::asio::io_context* a;
  boost::asio::io_context* b;
  int remaining;  // round trips left
  bool at_a;
  Latch* done;
  void operator()() {
    if (at_a) {
      if (remaining == 0) {
        done->count_down();
        return;
      }
      --remaining;
      boost::asio::post(*b, AsioHop{a, b, remaining, false, done});
    } else {
      boost::asio::post(*a, AsioHop{a, b, remaining, true, done});
    }
  }
};

void HopAsio(benchmark::State& state, int64_t poll_ns) {
  AsioThreads threads(2, poll_ns);
  while (state.KeepRunningBatch(kBatch)) {
    Latch done(1);
    boost::asio::post(threads.io(0), AsioHop{&threads.io(0), &threads.io(1), kBatch, true, &done});
    done.wait();
  }
  state.counters["round_trips_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_HopAioco(benchmark::State& state) { HopAioco(state, 0, -1); }
void BM_HopAsio(benchmark::State& state) { HopAsio(state, 0); }
void BM_HopAiocoBlocking(benchmark::State& state) { HopAioco(state, 0, 0); }
void BM_HopAiocoPolling(benchmark::State& state) { HopAioco(state, kPollMaxNs, -1); }
void BM_HopAsioPolling(benchmark::State& state) { HopAsio(state, kPollMaxNs); }

// Two threads handing a turn back and forth under a mutex + condvar.
void BM_HopCondvar(benchmark::State& state) {
  std::mutex mu;
  std::condition_variable cv;
  int turn = 0;          // 0: thread A's, 1: thread B's
  bool stop = false;
  std::thread b([&] {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return turn == 1 || stop; });
      if (stop) return;
      turn = 0;
      cv.notify_all();
    }
  });
  while (state.KeepRunningBatch(kBatch)) {
    // The benchmark thread plays A.
    std::unique_lock<std::mutex> lock(mu);
    for (int i = 0; i < kBatch; ++i) {
      turn = 1;
      cv.notify_all();
      cv.wait(lock, [&] { return turn == 0; });
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  }
  b.join();
  state.counters["round_trips_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// --- bottom halves ---------------------------------------------------------

void BM_BhScheduleAioco(benchmark::State& state) {
  auto ctx_or = AioContext::Create();
  if (!ctx_or.ok()) std::abort();
  std::unique_ptr<AioContext> ctx = std::move(*ctx_or);
  AioContext::SetCurrent(ctx.get());
  int64_t runs = 0;
  aioco::BottomHalf* bh = ctx->NewBh([&runs] { ++runs; }, "bench");
  for (auto _ : state) {
    bh->Schedule();
    ctx->Poll(false);
  }
  bh->Delete();
  ctx->Poll(false);
  if (runs != state.iterations()) {
    state.SkipWithError("bottom half runs do not match iterations");
  }
  AioContext::SetCurrent(nullptr);
}

void BM_BhScheduleAsio(benchmark::State& state) {
  boost::asio::io_context io(1);
  // Without outstanding work an io_context that runs dry stops, and later
  // poll_one() calls would run nothing.
  auto guard = boost::asio::make_work_guard(io);
  int64_t runs = 0;
  for (auto _ : state) {
    boost::asio::post(io, [&runs] { ++runs; });
    io.poll_one();
  }
  if (runs != state.iterations()) state.SkipWithError("handler runs do not match iterations");
}

// --- timers ----------------------------------------------------------------

constexpr int kTimers = 256;

inline uint32_t NextRandom(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

void BM_TimerArmCancelAioco(benchmark::State& state) {
  auto ctx_or = AioContext::Create();
  if (!ctx_or.ok()) std::abort();
  std::unique_ptr<AioContext> ctx = std::move(*ctx_or);
  AioContext::SetCurrent(ctx.get());
  std::vector<std::unique_ptr<aioco::Timer>> timers;
  for (int i = 0; i < kTimers; ++i) {
    timers.push_back(ctx->NewTimer(ClockType::kMonotonic, [] { std::abort(); }));
  }
  const int64_t base = ClockNs(ClockType::kMonotonic) + int64_t{3600} * 1000000000;
  uint32_t seed = 12345;
  for (auto _ : state) {
    uint32_t r = NextRandom(&seed);
    timers[r % kTimers]->ModNs(base + (r >> 8));
    timers[(r >> 16) % kTimers]->Cancel();
  }
  for (auto& t : timers) t->Cancel();
  timers.clear();
  ctx->Poll(false);
  AioContext::SetCurrent(nullptr);
}

void BM_TimerArmCancelAsio(benchmark::State& state) {
  boost::asio::io_context io(1);
  auto guard = boost::asio::make_work_guard(io);
  std::vector<std::unique_ptr<boost::asio::steady_timer>> timers;
  for (int i = 0; i < kTimers; ++i) timers.push_back(std::make_unique<boost::asio::steady_timer>(io));
  uint32_t seed = 12345;
  int64_t n = 0;
  for (auto _ : state) {
    uint32_t r = NextRandom(&seed);
    auto& t = timers[r % kTimers];
    t->expires_after(std::chrono::hours(1) + std::chrono::nanoseconds(r >> 8));
    t->async_wait([](const boost::system::error_code&) {});
    timers[(r >> 16) % kTimers]->cancel();
    // Cancelled waits complete as handlers; reap them now and then, as a
    // loop would.
    if ((++n & 63) == 0) io.poll();
  }
  for (auto& t : timers) t->cancel();
  io.poll();
}

// --- fan-out ---------------------------------------------------------------

constexpr int kFanOutHops = 2000;  // hops per coroutine per iteration

void BM_FanOutAioco(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto io = MakeIoThreads(n, 0);
  std::vector<AioContext*> ctxs;
  for (auto& t : io) ctxs.push_back(t->context());
  for (auto _ : state) {
    Latch done(n);
    for (int i = 0; i < n; ++i) {
      ctxs[i]->CoSchedule(Coroutine::Create([&ctxs, &done, i, n] {
        int at = i;
        for (int h = 0; h < kFanOutHops; ++h) {
          at = (at + 1) % n;
          CoRescheduleSelf(ctxs[at]);
        }
        done.count_down();
      }));
    }
    done.wait();
  }
  state.SetItemsProcessed(state.iterations() * n * kFanOutHops);
}

struct AsioFanOutHop {
  AsioThreads* threads;
  int n;
  int at;
  int remaining;
  Latch* done;
  void operator()() {
    if (remaining == 0) {
      done->count_down();
      return;
    }
    const int next = (at + 1) % n;
    boost::asio::post(threads->io(next), AsioFanOutHop{threads, n, next, remaining - 1, done});
  }
};

void BM_FanOutAsio(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  AsioThreads threads(n, 0);
  for (auto _ : state) {
    Latch done(n);
    for (int i = 0; i < n; ++i) {
      boost::asio::post(threads.io(i), AsioFanOutHop{&threads, n, i, kFanOutHops, &done});
    }
    done.wait();
  }
  state.SetItemsProcessed(state.iterations() * n * kFanOutHops);
}

BENCHMARK(BM_HopAioco)->Name("aio/hop_round_trip/aioco")->UseRealTime();
BENCHMARK(BM_HopAsio)->Name("aio/hop_round_trip/asio")->UseRealTime();
BENCHMARK(BM_HopCondvar)->Name("aio/hop_round_trip/std_condvar")->UseRealTime();
BENCHMARK(BM_HopAiocoBlocking)->Name("aio/hop_round_trip_blocking/aioco")->UseRealTime();
BENCHMARK(BM_HopAsio)->Name("aio/hop_round_trip_blocking/asio")->UseRealTime();
BENCHMARK(BM_HopAiocoPolling)->Name("aio/hop_round_trip_polling/aioco")->UseRealTime();
BENCHMARK(BM_HopAsioPolling)->Name("aio/hop_round_trip_polling/asio")->UseRealTime();
BENCHMARK(BM_BhScheduleAioco)->Name("aio/bh_schedule/aioco");
BENCHMARK(BM_BhScheduleAsio)->Name("aio/bh_schedule/asio");
BENCHMARK(BM_TimerArmCancelAioco)->Name("timers/arm_cancel/aioco");
BENCHMARK(BM_TimerArmCancelAsio)->Name("timers/arm_cancel/asio");
BENCHMARK(BM_FanOutAioco)->Name("aio/fan_out/aioco")->Arg(2)->Arg(4)->Arg(8)->Arg(16)->UseRealTime();
BENCHMARK(BM_FanOutAsio)->Name("aio/fan_out/asio")->Arg(2)->Arg(4)->Arg(8)->Arg(16)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
