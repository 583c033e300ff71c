// A small Google Benchmark binary whose names exercise every pairing rule of
// tools/report.py: plain pairs, pairs with arguments, a real-time side paired
// with a CPU-time side, several baselines for one aioco entry, an aioco entry
// with no baseline, a baseline with no aioco entry, a name that does not follow
// the convention, and a threads:N family for the scaling table. The amounts of
// work differ on purpose so the ratios are far from 1.

#include <cstdint>

#include "benchmark/benchmark.h"

namespace {

uint64_t Spin(int64_t n) {
  uint64_t x = 0;
  for (int64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    benchmark::DoNotOptimize(x);
  }
  return x;
}

void BM_Work(benchmark::State& state, int64_t n) {
  for (auto _ : state) benchmark::DoNotOptimize(Spin(n));
  state.SetItemsProcessed(state.iterations());
}

void BM_WorkArg(benchmark::State& state, int64_t scale) {
  for (auto _ : state) benchmark::DoNotOptimize(Spin(state.range(0) * scale));
}

BENCHMARK_CAPTURE(BM_Work, aioco_spin, 100)->Name("tiny/spin/aioco");
BENCHMARK_CAPTURE(BM_Work, base_spin, 400)->Name("tiny/spin/slow");
BENCHMARK_CAPTURE(BM_Work, base2_spin, 25)->Name("tiny/spin/fast");

BENCHMARK_CAPTURE(BM_WorkArg, aioco_arg, 1)->Name("tiny/arg/aioco")->Arg(16)->Arg(64);
BENCHMARK_CAPTURE(BM_WorkArg, base_arg, 4)->Name("tiny/arg/base")->Arg(16)->Arg(64);

BENCHMARK_CAPTURE(BM_Work, aioco_rt, 200)->Name("tiny/realtime/aioco")->UseRealTime();
BENCHMARK_CAPTURE(BM_Work, base_rt, 50)->Name("tiny/realtime/cpu_base");

BENCHMARK_CAPTURE(BM_Work, lonely, 10)->Name("tiny/lonely/aioco");
BENCHMARK_CAPTURE(BM_Work, orphan, 10)->Name("tiny/orphan/other");
BENCHMARK_CAPTURE(BM_Work, odd, 10)->Name("unconventional_name");

void BM_Scale(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Spin(50));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Scale)->Name("tiny/scale/aioco")->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
