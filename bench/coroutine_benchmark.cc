// Coroutine core benchmarks: QEMU's test-coroutine perf set (lifecycle,
// nesting, yield, function-call baseline, cost) against Boost.Context in the
// same binary, plus the raw context-switch primitives.
//
// Names: "coroutine/<metric>/<impl>" (see tools/report.py); impl "aioco" is
// ours. Baselines:
//   boost_fcontext  boost::context::detail::jump_fcontext (the raw switch
//                   under boost::context::fiber)
//   boost_fiber     boost::context::fiber with pooled_fixedsize_stack (the
//                   fastest Boost allocator here: stacks are reused, as ours)
//   boost_fiber_fixedsize / boost_fiber_protected
//                   the same with fixedsize_stack (malloc) and
//                   protected_fixedsize_stack (mmap + guard page per fiber,
//                   the like-for-like but unpooled stack)
//   func_call       a non-inlined function call (QEMU's /perf/function-call)
//   inline_asm      a bare switch written as inline asm with a clobber list,
//                   so the compiler saves only live registers (Photon's
//                   way), without any coroutine bookkeeping
// aioco's yield_round_trip is Coroutine::Enter() + Coroutine::Yield()
// through the public API (on x86-64 both are inline and switch with inline
// asm; FP control words are per thread unless the build has
// --define=aioco_fp_control=coroutine, see coroutine/coroutine.h).
// raw_switch_round_trip/aioco is the out-of-line .S switch, which sanitizer
// builds and --define=aioco_context=asm use.
// Stacks are 1 MiB for every implementation (only touched pages cost).

#include <boost/context/detail/fcontext.hpp>
#include <boost/context/fiber.hpp>
#include <boost/context/fixedsize_stack.hpp>
#include <boost/context/pooled_fixedsize_stack.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <utility>

#include "benchmark/benchmark.h"
#include "coroutine/coroutine.h"

namespace {

using aioco::Coroutine;
namespace bctx = boost::context;
namespace bdet = boost::context::detail;

constexpr size_t kStackSize = size_t{1} << 20;

// --- yield round trip: enter a coroutine, it yields back ----------------------

void BM_YieldRoundTripAioco(benchmark::State& state) {
  bool stop = false;
  Coroutine* co = Coroutine::Create([&stop] {
    while (!stop) Coroutine::Yield();
  });
  for (auto _ : state) co->Enter();
  stop = true;
  co->Enter();
}

void FcontextLoop(bdet::transfer_t t) {
  for (;;) t = bdet::jump_fcontext(t.fctx, nullptr);
}

void BM_YieldRoundTripBoostFcontext(benchmark::State& state) {
  std::unique_ptr<char[]> stack(new char[kStackSize]);
  bdet::fcontext_t ctx =
      bdet::make_fcontext(stack.get() + kStackSize, kStackSize, &FcontextLoop);
  for (auto _ : state) ctx = bdet::jump_fcontext(ctx, nullptr).fctx;
  // The context loops forever; its stack is simply released.
}

__attribute__((noinline)) void Dummy(uint64_t* i) {
  __asm__ volatile("");
  --*i;
}

void BM_FunctionCall(benchmark::State& state) {
  uint64_t i = UINT64_MAX;
  for (auto _ : state) Dummy(&i);
  benchmark::DoNotOptimize(i);
}

// --- lifecycle: create + enter of a coroutine that returns at once ------------

void Empty(void*) {}

void BM_LifecycleAioco(benchmark::State& state) {
  for (auto _ : state) Coroutine::Create(&Empty, nullptr)->Enter();
}

void BM_LifecycleAiocoCallable(benchmark::State& state) {
  int n = 0;
  for (auto _ : state) Coroutine::Create([&n] { ++n; })->Enter();
  benchmark::DoNotOptimize(n);
}

template <typename Alloc>
void BM_LifecycleBoostFiber(benchmark::State& state) {
  Alloc alloc(kStackSize);
  for (auto _ : state) {
    bctx::fiber f{std::allocator_arg, alloc,
                  [](bctx::fiber&& sink) { return std::move(sink); }};
    f = std::move(f).resume();
    benchmark::DoNotOptimize(f);
  }
}

// --- cost: create, enter, it yields, enter again, it returns ------------------

void YieldOnce(void*) { Coroutine::Yield(); }

void BM_CostAioco(benchmark::State& state) {
  for (auto _ : state) {
    Coroutine* co = Coroutine::Create(&YieldOnce, nullptr);
    co->Enter();
    co->Enter();
  }
}

void BM_CostBoostFiber(benchmark::State& state) {
  bctx::pooled_fixedsize_stack alloc(kStackSize);
  for (auto _ : state) {
    bctx::fiber f{std::allocator_arg, alloc, [](bctx::fiber&& sink) {
                    sink = std::move(sink).resume();
                    return std::move(sink);
                  }};
    f = std::move(f).resume();
    f = std::move(f).resume();
    benchmark::DoNotOptimize(f);
  }
}

// --- nesting: a chain of 1000 coroutines, each entering the next --------------

struct NestData {
  unsigned n_enter = 0;
  unsigned n_return = 0;
  unsigned max = 0;
};

void Nest(void* opaque) {
  auto* nd = static_cast<NestData*>(opaque);
  ++nd->n_enter;
  if (nd->n_enter < nd->max) Coroutine::Create(&Nest, nd)->Enter();
  ++nd->n_return;
}

void BM_NestingAioco(benchmark::State& state) {
  const unsigned depth = static_cast<unsigned>(state.range(0));
  Coroutine::IncPoolSize(depth);  // as QEMU's users do for deep fan-out
  for (auto _ : state) {
    NestData nd;
    nd.max = depth;
    Coroutine::Create(&Nest, &nd)->Enter();
    if (nd.n_return != depth) state.SkipWithError("nesting broke");
  }
  Coroutine::DecPoolSize(depth);
  state.SetItemsProcessed(state.iterations() * depth);
}

void NestFiber(bctx::pooled_fixedsize_stack& alloc, NestData* nd) {
  ++nd->n_enter;
  if (nd->n_enter < nd->max) {
    bctx::fiber child{std::allocator_arg, alloc,
                      [&alloc, nd](bctx::fiber&& sink) {
                        NestFiber(alloc, nd);
                        return std::move(sink);
                      }};
    child = std::move(child).resume();
  }
  ++nd->n_return;
}

void BM_NestingBoostFiber(benchmark::State& state) {
  const unsigned depth = static_cast<unsigned>(state.range(0));
  bctx::pooled_fixedsize_stack alloc(kStackSize);
  for (auto _ : state) {
    NestData nd;
    nd.max = depth;
    bctx::fiber root{std::allocator_arg, alloc,
                     [&alloc, &nd](bctx::fiber&& sink) {
                       NestFiber(alloc, &nd);
                       return std::move(sink);
                     }};
    root = std::move(root).resume();
    if (nd.n_return != depth) state.SkipWithError("nesting broke");
  }
  state.SetItemsProcessed(state.iterations() * depth);
}

// --- raw switch primitives ----------------------------------------------------

#if defined(__x86_64__)

// aioco's assembly switch alone, without the coroutine bookkeeping
// (coroutine/internal/context_x86_64_sysv_elf.S; linked in every build).
extern "C" intptr_t aioco_context_swap(void** save_sp, void* load_sp,
                                       intptr_t arg);
extern "C" void aioco_context_start();

struct RawPair {
  void* main_sp = nullptr;
  void* co_sp = nullptr;
};
RawPair g_raw;

[[noreturn]] void RawLoop() {
  for (;;) {
    aioco_context_swap(&g_raw.co_sp, g_raw.main_sp,
                                                  0);
  }
}

void BM_RawSwitchAioco(benchmark::State& state) {
  std::unique_ptr<char[]> stack(new char[kStackSize]);
  // The frame aioco_context_swap pops: control words, six registers (r12
  // holds the function aioco_context_start calls) and the return address.
  auto top = (reinterpret_cast<uintptr_t>(stack.get()) + kStackSize) & ~15ul;
  auto* frame = reinterpret_cast<uint64_t*>(top - 16 - 64);
  uint32_t mxcsr;
  uint16_t fpucw;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fpucw));
  frame[0] = mxcsr | (uint64_t{fpucw} << 32);
  for (int i = 1; i < 7; ++i) frame[i] = 0;
  frame[4] = reinterpret_cast<uint64_t>(&RawLoop);  // r12
  frame[7] = reinterpret_cast<uint64_t>(
      &aioco_context_start);
  g_raw.co_sp = frame;
  for (auto _ : state) {
    aioco_context_swap(&g_raw.main_sp, g_raw.co_sp,
                                                  0);
  }
}

// Inline-asm switch: saves rbp and a resume address, declares everything
// else clobbered so the compiler spills only what is live.
__attribute__((always_inline)) inline void InlineSwitch(void** save_sp,
                                                        void* load_sp) {
  __asm__ volatile(
      "subq $128, %%rsp\n\t"  // keep clear of the red zone
      "pushq %%rbp\n\t"
      "leaq 1f(%%rip), %%rax\n\t"
      "pushq %%rax\n\t"
      "movq %%rsp, (%0)\n\t"
      "movq %1, %%rsp\n\t"
      "popq %%rax\n\t"
      "jmpq *%%rax\n"
      "1:\n\t"
      "popq %%rbp\n\t"
      "addq $128, %%rsp\n\t"
      : "+D"(save_sp), "+S"(load_sp)
      :
      : "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13",
        "r14", "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
        "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
        "xmm15", "memory", "cc");
}

RawPair g_inline;

[[noreturn]] void InlineLoop() {
  for (;;) InlineSwitch(&g_inline.co_sp, g_inline.main_sp);
}

// Entered by the first InlineSwitch to a new stack: calls InlineLoop with an
// ABI-aligned stack.
extern "C" void aioco_bench_inline_start();
__asm__(
    ".text\n"
    ".p2align 4\n"
    "aioco_bench_inline_start:\n\t"
    "popq %rax\n\t"
    "andq $-16, %rsp\n\t"
    "callq *%rax\n\t"
    "ud2\n");

void BM_RawSwitchInlineAsm(benchmark::State& state) {
  std::unique_ptr<char[]> stack(new char[kStackSize]);
  auto top = (reinterpret_cast<uintptr_t>(stack.get()) + kStackSize) & ~15ul;
  auto* sp = reinterpret_cast<uint64_t*>(top - 64);
  sp[0] = reinterpret_cast<uint64_t>(&aioco_bench_inline_start);
  sp[1] = reinterpret_cast<uint64_t>(&InlineLoop);
  g_inline.co_sp = sp;
  for (auto _ : state) InlineSwitch(&g_inline.main_sp, g_inline.co_sp);
}

void BM_RawSwitchBoostFcontext(benchmark::State& state) {
  BM_YieldRoundTripBoostFcontext(state);
}

#endif  // __x86_64__

}  // namespace

BENCHMARK(BM_YieldRoundTripAioco)->Name("coroutine/yield_round_trip/aioco");
BENCHMARK(BM_YieldRoundTripBoostFcontext)
    ->Name("coroutine/yield_round_trip/boost_fcontext");
BENCHMARK(BM_FunctionCall)->Name("coroutine/yield_round_trip/func_call");

BENCHMARK(BM_LifecycleAioco)->Name("coroutine/lifecycle_pooled/aioco");
BENCHMARK(BM_LifecycleBoostFiber<bctx::pooled_fixedsize_stack>)
    ->Name("coroutine/lifecycle_pooled/boost_fiber");
BENCHMARK(BM_LifecycleBoostFiber<bctx::fixedsize_stack>)
    ->Name("coroutine/lifecycle_pooled/boost_fiber_fixedsize");
BENCHMARK(BM_LifecycleBoostFiber<bctx::protected_fixedsize_stack>)
    ->Name("coroutine/lifecycle_pooled/boost_fiber_protected");
BENCHMARK(BM_LifecycleAiocoCallable)
    ->Name("coroutine/lifecycle_pooled_callable/aioco");

BENCHMARK(BM_CostAioco)->Name("coroutine/cost/aioco");
BENCHMARK(BM_CostBoostFiber)->Name("coroutine/cost/boost_fiber");

BENCHMARK(BM_NestingAioco)->Name("coroutine/nesting/aioco")->Arg(1000);
BENCHMARK(BM_NestingBoostFiber)->Name("coroutine/nesting/boost_fiber")->Arg(1000);

#if defined(__x86_64__)
BENCHMARK(BM_RawSwitchAioco)->Name("coroutine/raw_switch_round_trip/aioco");
BENCHMARK(BM_RawSwitchBoostFcontext)
    ->Name("coroutine/raw_switch_round_trip/boost_fcontext");
BENCHMARK(BM_RawSwitchInlineAsm)
    ->Name("coroutine/raw_switch_round_trip/inline_asm");
#endif

BENCHMARK_MAIN();
