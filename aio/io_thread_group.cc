// Design note
//
// State: the layout (threads_, contexts_, cpus_, nodes_of_, names_,
// node_ids_, node_states_) is written only by Create() before the group is
// published and is immutable afterwards, so readers need no lock. The
// round-robin counters are relaxed atomics: they only spread load, they
// publish nothing.
//
// Create(), in order:
//   1. Read the topology (options.sysfs_root) and, if asked, restrict it to
//      the affinity mask.
//   2. Compute the placement order (cores first, nodes interleaved) and give
//      thread i the CPU order[i % order.size()].
//   3. Start each IoThread with its CPU (when pinning) and name.
//   4. Give each thread its node's coroutine pool domain (nodes with ids
//      below 0 use domain 0).
//   5. For each node, raise the global coroutine pool limit by
//      coroutine_pool_per_thread per thread, then pre-warm each thread's
//      local pool by running a one-shot there that creates that many
//      coroutines and runs them to completion (their stacks return to that
//      thread's pool, allocated and first touched on the thread's node).
// Destruction: stop and join the threads (IoThread destructors), then give
// the reserved pool limit back.

#include "aio/io_thread_group.h"

#include <algorithm>
#include <latch>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace aioco {
namespace {

// Runs `fn` on each of `contexts`' home threads and waits for all of them.
template <typename Fn>
void RunOnEachAndWait(const std::vector<AioContext*>& contexts, Fn fn) {
  std::latch done(static_cast<std::ptrdiff_t>(contexts.size()));
  for (size_t i = 0; i < contexts.size(); ++i) {
    contexts[i]->ScheduleOneshot([&fn, &done, i] {
      fn(i);
      done.count_down();
    });
  }
  done.wait();
}

// The coroutine pool domain of a node's threads (nodes below 0: domain 0).
unsigned PoolDomainOf(int node) { return node >= 0 ? static_cast<unsigned>(node) : 0; }

}  // namespace

absl::StatusOr<std::unique_ptr<IoThreadGroup>> IoThreadGroup::Create(
    const IoThreadGroupOptions& options) {
  absl::StatusOr<aio_internal::CpuTopology> topology =
      aio_internal::ReadCpuTopology(options.sysfs_root);
  if (!topology.ok()) return topology.status();
  if (options.respect_affinity) {
    std::vector<int> allowed = aio_internal::AffinityCpus();
    if (!allowed.empty()) topology->Restrict(allowed);
  }
  std::vector<int> order = topology->PlacementOrder();
  if (order.empty()) {
    return absl::FailedPreconditionError(
        "IoThreadGroup: no usable CPU (online CPUs outside the affinity mask?)");
  }
  if (options.num_threads < 0) {
    return absl::InvalidArgumentError("IoThreadGroup: num_threads < 0");
  }
  const size_t n = options.num_threads == 0
                       ? order.size()
                       : static_cast<size_t>(options.num_threads);

  std::unique_ptr<IoThreadGroup> group(new IoThreadGroup());
  group->topology_ = *std::move(topology);
  for (size_t i = 0; i < n; ++i) {
    const int cpu = order[i % order.size()];
    const int node = group->topology_.NodeOf(cpu);
    IoThreadOptions thread_options;
    thread_options.aio = options.aio;
    thread_options.cpu = options.pin ? cpu : -1;
    thread_options.name = absl::StrCat(options.name_prefix, i);
    absl::StatusOr<std::unique_ptr<IoThread>> thread =
        IoThread::Create(thread_options);
    if (!thread.ok()) {
      return absl::Status(
          thread.status().code(),
          absl::StrCat("IoThreadGroup: thread ", i, " on cpu ", cpu, ": ",
                       thread.status().message()));
    }
    group->contexts_.push_back((*thread)->context());
    group->threads_.push_back(*std::move(thread));
    group->cpus_.push_back(cpu);
    group->nodes_of_.push_back(node);
    group->names_.push_back(std::move(thread_options.name));
    NodeState* state = nullptr;
    for (NodeState& s : group->node_states_) {
      if (s.id == node) state = &s;
    }
    if (state == nullptr) {
      group->node_states_.emplace_back();
      state = &group->node_states_.back();
      state->id = node;
      state->next = std::make_unique<std::atomic<size_t>>(0);
    }
    state->threads.push_back(i);
  }
  std::sort(group->node_states_.begin(), group->node_states_.end(),
            [](const NodeState& a, const NodeState& b) { return a.id < b.id; });
  for (const NodeState& s : group->node_states_) group->node_ids_.push_back(s.id);

  {
    const std::vector<int>& nodes = group->nodes_of_;
    RunOnEachAndWait(group->contexts_, [&nodes](size_t i) {
      Coroutine::SetThreadPoolDomain(PoolDomainOf(nodes[i]));
    });
  }
  if (options.coroutine_pool_per_thread > 0) {
    const unsigned per_thread = options.coroutine_pool_per_thread;
    for (NodeState& s : group->node_states_) {
      s.pool_reserved = per_thread * static_cast<unsigned>(s.threads.size());
      Coroutine::IncPoolSize(s.pool_reserved);
    }
    RunOnEachAndWait(group->contexts_, [per_thread](size_t) {
      std::vector<Coroutine*> warm;
      warm.reserve(per_thread);
      for (unsigned k = 0; k < per_thread; ++k) {
        warm.push_back(Coroutine::Create([] {}));
      }
      for (Coroutine* co : warm) co->Enter();
    });
  }
  return group;
}

IoThreadGroup::~IoThreadGroup() {
  // Reverse order of creation; each IoThread stops its loop and joins.
  while (!threads_.empty()) threads_.pop_back();
  for (const NodeState& s : node_states_) {
    if (s.pool_reserved > 0) Coroutine::DecPoolSize(s.pool_reserved);
  }
}

const IoThreadGroup::NodeState* IoThreadGroup::FindNode(int node) const {
  for (const NodeState& s : node_states_) {
    if (s.id == node) return &s;
  }
  return nullptr;
}

std::vector<AioContext*> IoThreadGroup::NodeContexts(int node) const {
  std::vector<AioContext*> out;
  if (const NodeState* s = FindNode(node)) {
    for (size_t i : s->threads) out.push_back(contexts_[i]);
  }
  return out;
}

int IoThreadGroup::NodeOf(const AioContext* ctx) const {
  for (size_t i = 0; i < contexts_.size(); ++i) {
    if (contexts_[i] == ctx) return nodes_of_[i];
  }
  return -1;
}

AioContext* IoThreadGroup::Next() {
  // Relaxed: a load-spreading counter; nothing is published through it.
  size_t i = next_.fetch_add(1, std::memory_order_relaxed);
  return contexts_[i % contexts_.size()];
}

AioContext* IoThreadGroup::NextOnNode(int node) {
  const NodeState* s = FindNode(node);
  if (s == nullptr) return Next();
  // Relaxed: as in Next().
  size_t i = s->next->fetch_add(1, std::memory_order_relaxed);
  return contexts_[s->threads[i % s->threads.size()]];
}

CoroutinePoolStats IoThreadGroup::NodePoolStats(int node) const {
  CoroutinePoolStats total{};
  std::vector<AioContext*> contexts = NodeContexts(node);
  if (contexts.empty()) return total;
  std::vector<CoroutinePoolStats> per_thread(contexts.size());
  RunOnEachAndWait(contexts, [&per_thread](size_t i) {
    per_thread[i] = GetCoroutinePoolStats();
  });
  for (const CoroutinePoolStats& s : per_thread) {
    total.local_free += s.local_free;
    total.created += s.created;
    total.reused += s.reused;
    total.global_free = s.global_free;
    total.max_global = s.max_global;
  }
  return total;
}

size_t IoThreadGroup::NodePoolDomainFree(int node) const {
  return FindNode(node) == nullptr ? 0 : GetCoroutinePoolDomainFree(PoolDomainOf(node));
}

unsigned IoThreadGroup::NodePoolReservation(int node) const {
  const NodeState* s = FindNode(node);
  return s == nullptr ? 0 : s->pool_reserved;
}

}  // namespace aioco
