// Tests for aio/io_thread_group.h: layout over a fake sysfs tree, pinning on
// the real machine, round-robin, per-node coroutine pool accounting.

#include "aio/io_thread_group.h"

#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <latch>
#include <set>
#include <string>
#include <vector>

#include "aio/aio_context.h"
#include "coroutine/coroutine.h"
#include "gmock/gmock.h"
#include "tests/aio/fake_sysfs.h"
#include "gtest/gtest.h"

namespace aioco {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

using aio_testing::FakeSysfs;

// Two nodes: node 0 = CPUs 0,1; node 1 = CPUs 2,3 (no SMT information).
FakeSysfs TwoNodeTree() {
  FakeSysfs fs;
  fs.Write("devices/system/cpu/online", "0-3\n");
  fs.Write("devices/system/node/node0/cpulist", "0-1\n");
  fs.Write("devices/system/node/node1/cpulist", "2-3\n");
  return fs;
}

IoThreadGroupOptions FakeOptions(const FakeSysfs& fs) {
  IoThreadGroupOptions o;
  o.sysfs_root = fs.root();
  o.pin = false;               // the fake CPUs need not exist here
  o.respect_affinity = false;  // nor be in our affinity mask
  return o;
}

// Runs fn(i) on each context's home thread and waits.
template <typename Fn>
void OnEach(const std::vector<AioContext*>& contexts, Fn fn) {
  std::latch done(static_cast<std::ptrdiff_t>(contexts.size()));
  for (size_t i = 0; i < contexts.size(); ++i) {
    contexts[i]->ScheduleOneshot([&, i] {
      fn(i);
      done.count_down();
    });
  }
  done.wait();
}

TEST(IoThreadGroupTest, LayoutFromFakeSysfs) {
  FakeSysfs fs = TwoNodeTree();
  absl::StatusOr<std::unique_ptr<IoThreadGroup>> group =
      IoThreadGroup::Create(FakeOptions(fs));
  ASSERT_TRUE(group.ok()) << group.status();
  IoThreadGroup& g = **group;
  ASSERT_EQ(g.size(), 4u);
  // Nodes interleaved: 0 (node 0), 2 (node 1), 1 (node 0), 3 (node 1).
  EXPECT_EQ(g.cpu(0), 0);
  EXPECT_EQ(g.cpu(1), 2);
  EXPECT_EQ(g.cpu(2), 1);
  EXPECT_EQ(g.cpu(3), 3);
  EXPECT_EQ(g.node(0), 0);
  EXPECT_EQ(g.node(1), 1);
  EXPECT_EQ(g.node(2), 0);
  EXPECT_EQ(g.node(3), 1);
  EXPECT_THAT(g.node_ids(), ElementsAre(0, 1));
  EXPECT_THAT(g.NodeContexts(0), ElementsAre(g.context(0), g.context(2)));
  EXPECT_THAT(g.NodeContexts(1), ElementsAre(g.context(1), g.context(3)));
  EXPECT_TRUE(g.NodeContexts(7).empty());
  EXPECT_EQ(g.NodeOf(g.context(3)), 1);
  EXPECT_EQ(g.NodeOf(nullptr), -1);
  std::set<AioContext*> distinct(g.contexts().begin(), g.contexts().end());
  EXPECT_EQ(distinct.size(), 4u);

  // Every context runs on its own, named thread, as its Current() context.
  std::vector<std::string> names(g.size());
  std::vector<AioContext*> current(g.size());
  std::vector<pthread_t> tids(g.size());
  OnEach(g.contexts(), [&](size_t i) {
    char buf[16] = {};
    pthread_getname_np(pthread_self(), buf, sizeof(buf));
    names[i] = buf;
    current[i] = AioContext::Current();
    tids[i] = pthread_self();
  });
  for (size_t i = 0; i < g.size(); ++i) {
    EXPECT_EQ(names[i], "aioco-io-" + std::to_string(i));
    EXPECT_EQ(g.name(i), names[i]);
    EXPECT_EQ(current[i], g.context(i));
    EXPECT_FALSE(pthread_equal(tids[i], pthread_self()));
  }
}

TEST(IoThreadGroupTest, MoreThreadsThanCpusWrapsAround) {
  FakeSysfs fs = TwoNodeTree();
  IoThreadGroupOptions o = FakeOptions(fs);
  o.num_threads = 6;
  o.name_prefix = "grp";
  absl::StatusOr<std::unique_ptr<IoThreadGroup>> group = IoThreadGroup::Create(o);
  ASSERT_TRUE(group.ok()) << group.status();
  IoThreadGroup& g = **group;
  ASSERT_EQ(g.size(), 6u);
  EXPECT_EQ(g.cpu(4), 0);
  EXPECT_EQ(g.cpu(5), 2);
  EXPECT_EQ(g.NodeContexts(0).size(), 3u);
  EXPECT_EQ(g.name(5), "grp5");
}

TEST(IoThreadGroupTest, RoundRobin) {
  FakeSysfs fs = TwoNodeTree();
  absl::StatusOr<std::unique_ptr<IoThreadGroup>> group =
      IoThreadGroup::Create(FakeOptions(fs));
  ASSERT_TRUE(group.ok()) << group.status();
  IoThreadGroup& g = **group;
  std::vector<AioContext*> seen;
  for (size_t i = 0; i < 2 * g.size(); ++i) seen.push_back(g.Next());
  EXPECT_THAT(std::vector<AioContext*>(seen.begin(), seen.begin() + 4),
              UnorderedElementsAreArray(g.contexts()));
  EXPECT_THAT(std::vector<AioContext*>(seen.begin() + 4, seen.end()),
              UnorderedElementsAreArray(g.contexts()));
  for (int k = 0; k < 4; ++k) EXPECT_EQ(g.NodeOf(g.NextOnNode(1)), 1);
  std::set<AioContext*> node0 = {g.NextOnNode(0), g.NextOnNode(0)};
  EXPECT_EQ(node0.size(), 2u);
  // Unknown node: falls back to all contexts.
  EXPECT_NE(g.NextOnNode(42), nullptr);
}

TEST(IoThreadGroupTest, PinsToCpusOfThisMachine) {
  IoThreadGroupOptions o;  // real /sys, affinity respected, pinned
  absl::StatusOr<std::unique_ptr<IoThreadGroup>> group = IoThreadGroup::Create(o);
  ASSERT_TRUE(group.ok()) << group.status();
  IoThreadGroup& g = **group;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  EXPECT_EQ(g.size(), static_cast<size_t>(CPU_COUNT(&allowed)));
  std::vector<int> running_on(g.size());
  std::vector<int> mask_count(g.size());
  // Not vector<bool>: its elements share words, so threads would race.
  std::vector<int> mask_has_cpu(g.size());
  OnEach(g.contexts(), [&](size_t i) {
    cpu_set_t set;
    CPU_ZERO(&set);
    pthread_getaffinity_np(pthread_self(), sizeof(set), &set);
    mask_count[i] = CPU_COUNT(&set);
    mask_has_cpu[i] = CPU_ISSET(g.cpu(i), &set);
    running_on[i] = sched_getcpu();
  });
  std::set<int> cpus;
  for (size_t i = 0; i < g.size(); ++i) {
    EXPECT_TRUE(CPU_ISSET(g.cpu(i), &allowed));
    EXPECT_EQ(mask_count[i], 1) << "thread " << i;
    EXPECT_TRUE(mask_has_cpu[i]) << "thread " << i;
    EXPECT_EQ(running_on[i], g.cpu(i)) << "thread " << i;
    cpus.insert(g.cpu(i));
  }
  EXPECT_EQ(cpus.size(), g.size());  // one thread per CPU
}

TEST(IoThreadGroupTest, PerNodeCoroutinePools) {
  const size_t max_before = GetCoroutinePoolStats().max_global;
  constexpr unsigned kPerThread = 16;
  {
    FakeSysfs fs = TwoNodeTree();
    IoThreadGroupOptions o = FakeOptions(fs);
    o.coroutine_pool_per_thread = kPerThread;
    absl::StatusOr<std::unique_ptr<IoThreadGroup>> group = IoThreadGroup::Create(o);
    ASSERT_TRUE(group.ok()) << group.status();
    IoThreadGroup& g = **group;
    EXPECT_EQ(g.NodePoolReservation(0), 2 * kPerThread);
    EXPECT_EQ(g.NodePoolReservation(1), 2 * kPerThread);
    EXPECT_EQ(g.NodePoolReservation(5), 0u);
    EXPECT_EQ(GetCoroutinePoolStats().max_global, max_before + 4 * kPerThread);
    for (int node : g.node_ids()) {
      CoroutinePoolStats s = g.NodePoolStats(node);
      // Each thread had kPerThread coroutines alive at once: each needed a
      // stack, allocated by that thread or taken from a pool.
      EXPECT_GE(s.created + s.reused, 2 * kPerThread) << "node " << node;
      EXPECT_GT(s.created, 0u) << "node " << node;
      EXPECT_EQ(s.max_global, max_before + 4 * kPerThread);
    }
    // The pre-warmed stacks are reused by coroutines created on that node.
    AioContext* ctx = g.NodeContexts(1)[0];
    CoroutinePoolStats before = g.NodePoolStats(1);
    std::latch done(1);
    ctx->ScheduleOneshot([&done] {
      Coroutine::Create([] {})->Enter();
      done.count_down();
    });
    done.wait();
    CoroutinePoolStats after = g.NodePoolStats(1);
    EXPECT_EQ(after.created + after.reused, before.created + before.reused + 1);

    // Each thread pools into its node's domain of the global pool.
    for (int node : g.node_ids()) {
      for (AioContext* c : g.NodeContexts(node)) {
        unsigned domain = 1000;
        std::latch seen(1);
        c->ScheduleOneshot([&domain, &seen] {
          domain = Coroutine::ThreadPoolDomain();
          seen.count_down();
        });
        seen.wait();
        EXPECT_EQ(domain, static_cast<unsigned>(node));
      }
    }
    // Stacks that overflow a node-1 thread's pool land in node 1's list.
    constexpr unsigned kRoom = 1024;  // so the overflow is kept, not freed
    Coroutine::IncPoolSize(kRoom);
    const size_t node0_before = g.NodePoolDomainFree(0);
    const size_t node1_before = g.NodePoolDomainFree(1);
    std::latch burst(1);
    ctx->ScheduleOneshot([&burst] {
      std::vector<Coroutine*> live;
      for (int i = 0; i < 3 * 128 + 16; ++i) {  // more than two local batches
        live.push_back(Coroutine::Create([] { Coroutine::Yield(); }));
        live.back()->Enter();
      }
      for (Coroutine* co : live) co->Enter();
      burst.count_down();
    });
    burst.wait();
    EXPECT_GT(g.NodePoolDomainFree(1), node1_before);
    EXPECT_EQ(g.NodePoolDomainFree(0), node0_before);
    Coroutine::DecPoolSize(kRoom);
  }
  EXPECT_EQ(GetCoroutinePoolStats().max_global, max_before);
}

TEST(IoThreadGroupTest, Errors) {
  FakeSysfs empty;
  IoThreadGroupOptions o = FakeOptions(empty);
  absl::StatusOr<std::unique_ptr<IoThreadGroup>> group = IoThreadGroup::Create(o);
  EXPECT_EQ(group.status().code(), absl::StatusCode::kNotFound);

  // CPUs that exist only in the fake tree, outside our affinity mask.
  FakeSysfs far;
  far.Write("devices/system/cpu/online", "1000-1001\n");
  o = FakeOptions(far);
  o.respect_affinity = true;
  group = IoThreadGroup::Create(o);
  EXPECT_EQ(group.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(group.status().message()), HasSubstr("no usable CPU"));

  // Pinning to a CPU that does not exist here fails and names the thread.
  o.respect_affinity = false;
  o.pin = true;
  group = IoThreadGroup::Create(o);
  ASSERT_FALSE(group.ok());
  EXPECT_THAT(std::string(group.status().message()),
              HasSubstr("thread 0 on cpu 1000"));
}

}  // namespace
}  // namespace aioco
