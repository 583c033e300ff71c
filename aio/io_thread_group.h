// -----------------------------------------------------------------------------
// File: aio/io_thread_group.h
// -----------------------------------------------------------------------------
//
// IoThreadGroup: one IoThread per usable CPU (or N of them), pinned and
// named, laid out over the machine's NUMA nodes, with a coroutine pool per
// node.
//
// Topology comes from sysfs (see aio/internal/cpu_topology.h; the root is an
// option so tests can use a fake tree), restricted by default to the CPUs in
// the process's affinity mask (cgroup cpusets, taskset). Threads are placed
// one per physical core first, nodes interleaved, then on SMT siblings; with
// more threads than CPUs the placement wraps around.
//
// Coroutine pools per node: the coroutine core keeps a free-stack pool per
// thread plus a global pool split into domains (Coroutine::
// SetThreadPoolDomain). Each thread of the group gets its node's domain, so
// a stack is allocated and first touched on a node, overflows into that
// node's global list and is reused only by threads of the same node: with
// the threads pinned, pooled stacks stay node-local memory. The group also
// (1) pre-warms each thread's pool with `coroutine_pool_per_thread` stacks
// allocated on that thread and (2) raises the global pool limit by that many
// per thread (Coroutine::IncPoolSize), accounted per node and given back
// (DecPoolSize) when the group is destroyed. NodePoolStats() sums the
// per-thread pool statistics of a node's threads; NodePoolDomainFree()
// counts the node's list of the global pool.
//
// Thread safety: after Create() returns, every accessor is thread-safe
// (the layout is immutable); Next()/NextOnNode() use atomic counters.
// NodePoolStats() may be called from any thread except the group's own
// threads (it waits for them). Destruction: from a thread outside the group,
// after the work on its contexts is finished; it stops and joins all threads.

#ifndef AIOCO_AIO_IO_THREAD_GROUP_H_
#define AIOCO_AIO_IO_THREAD_GROUP_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aio/aio_context.h"
#include "aio/internal/cpu_topology.h"
#include "aio/io_thread.h"
#include "coroutine/coroutine.h"

namespace aioco {

struct IoThreadGroupOptions {
  // Number of threads; 0 means one per usable CPU.
  int num_threads = 0;
  // Pin each thread to its CPU (IoThreadOptions::cpu).
  bool pin = true;
  // Thread names are "<prefix><index>" (Linux keeps 15 characters).
  std::string name_prefix = "aioco-io-";
  // Options for every thread's AioContext.
  AioContextOptions aio;
  // Root of the sysfs tree to read the topology from.
  std::string sysfs_root = "/sys";
  // Use only CPUs in the calling thread's affinity mask. Turn off when
  // sysfs_root is a fake tree describing another machine (and pin is off).
  bool respect_affinity = true;
  // Coroutine stacks to pre-allocate on each thread (its node-local pool);
  // the global pool limit grows by as many per thread while the group lives.
  unsigned coroutine_pool_per_thread = 0;
};

class IoThreadGroup {
 public:
  // IoThreadGroup::Create()
  //
  // Reads the topology and starts the threads. Errors: the topology cannot be
  // read (NotFound/InvalidArgument from sysfs), no usable CPU
  // (FailedPrecondition), or an IoThread fails to start (its status, with
  // the thread index and CPU added).
  static absl::StatusOr<std::unique_ptr<IoThreadGroup>> Create(
      const IoThreadGroupOptions& options = {});

  // Stops and joins every thread (each IoThread's destructor).
  ~IoThreadGroup();

  IoThreadGroup(const IoThreadGroup&) = delete;
  IoThreadGroup& operator=(const IoThreadGroup&) = delete;

  size_t size() const { return threads_.size(); }
  AioContext* context(size_t i) const { return contexts_[i]; }
  const std::vector<AioContext*>& contexts() const { return contexts_; }
  // CPU thread `i` is placed on (pinned there if options.pin), and its node.
  int cpu(size_t i) const { return cpus_[i]; }
  int node(size_t i) const { return nodes_of_[i]; }
  // Thread i's name as given to IoThreadOptions::name.
  const std::string& name(size_t i) const { return names_[i]; }

  // Ids of the NUMA nodes that have at least one thread, ascending.
  const std::vector<int>& node_ids() const { return node_ids_; }
  // Contexts of the threads on `node` (empty for an unknown node).
  std::vector<AioContext*> NodeContexts(int node) const;
  // The node of the thread running `ctx`, or -1 if not one of ours.
  int NodeOf(const AioContext* ctx) const;

  // Round-robin over all contexts / over one node's contexts (falls back to
  // all contexts for an unknown node). Thread-safe.
  AioContext* Next();
  AioContext* NextOnNode(int node);

  // Sum of the pool statistics of `node`'s threads (local_free, created and
  // reused summed; global_free/max_global as seen by them). Runs a one-shot
  // on each of the node's threads and waits.
  CoroutinePoolStats NodePoolStats(int node) const;

  // Coroutines in `node`'s list of the global pool (its pool domain; 0 for
  // an unknown node).
  size_t NodePoolDomainFree(int node) const;

  // Stacks the group added to the global pool limit for `node`.
  unsigned NodePoolReservation(int node) const;

  const aio_internal::CpuTopology& topology() const { return topology_; }

 private:
  struct NodeState {
    int id = 0;
    std::vector<size_t> threads;            // indices into threads_
    std::unique_ptr<std::atomic<size_t>> next;
    unsigned pool_reserved = 0;
  };

  IoThreadGroup() = default;
  const NodeState* FindNode(int node) const;

  aio_internal::CpuTopology topology_;
  std::vector<std::unique_ptr<IoThread>> threads_;
  std::vector<AioContext*> contexts_;
  std::vector<int> cpus_;
  std::vector<int> nodes_of_;
  std::vector<std::string> names_;
  std::vector<int> node_ids_;
  std::vector<NodeState> node_states_;
  std::atomic<size_t> next_{0};
};

}  // namespace aioco

#endif  // AIOCO_AIO_IO_THREAD_GROUP_H_
