// -----------------------------------------------------------------------------
// File: aio/internal/cpu_topology.h
// -----------------------------------------------------------------------------
//
// CpuTopology: the online CPUs, their NUMA nodes and SMT siblings, read from
// sysfs (Linux's /sys/devices/system/{cpu,node}). The sysfs root is a
// parameter so tests can feed a fake tree.
//
// Thread safety: ParseCpuList() and ReadCpuTopology() are thread-safe (they
// share no state). A CpuTopology is a plain value: const use from any thread.

#ifndef AIOCO_AIO_INTERNAL_CPU_TOPOLOGY_H_
#define AIOCO_AIO_INTERNAL_CPU_TOPOLOGY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace aioco {
namespace aio_internal {

struct NumaNode {
  int id = 0;
  std::vector<int> cpus;  // online CPUs of this node, ascending
};

struct CpuTopology {
  // Online CPUs, ascending.
  std::vector<int> online;
  // NUMA nodes that have at least one online CPU, ascending by id. Without
  // NUMA information in sysfs: a single node 0 holding every online CPU.
  // An online CPU missing from every node's list is placed in the lowest node.
  std::vector<NumaNode> nodes;
  // core_of[cpu]: an id shared by SMT siblings (the lowest CPU of the cpu's
  // thread_siblings_list), or cpu itself when sysfs does not say. Indexed by
  // CPU number; -1 for CPUs that are not online.
  std::vector<int> core_of;

  // The node holding `cpu`, or -1 if the CPU is not online.
  int NodeOf(int cpu) const;

  // Restricts the topology to `allowed` (e.g. the process affinity mask):
  // CPUs not in it are dropped, nodes left empty are removed.
  void Restrict(const std::vector<int>& allowed);

  // Placement order for threads: one CPU per physical core first, nodes
  // interleaved (node A's first core, node B's first core, ...), then the
  // remaining SMT siblings in the same interleaved way. Taking a prefix of it
  // spreads N threads over nodes and physical cores.
  std::vector<int> PlacementOrder() const;
};

// ParseCpuList()
//
// Parses the kernel's CPU list format ("0-3,8,10-11", trailing newline
// allowed; an empty list is valid). Returns the CPUs ascending and
// de-duplicated, or InvalidArgument naming the bad token.
absl::StatusOr<std::vector<int>> ParseCpuList(absl::string_view text);

// ReadCpuTopology()
//
// Reads <sysfs_root>/devices/system/cpu/online (required: NotFound if it is
// missing), <sysfs_root>/devices/system/node/node<N>/cpulist (optional) and
// <sysfs_root>/devices/system/cpu/cpu<N>/topology/thread_siblings_list
// (optional).
absl::StatusOr<CpuTopology> ReadCpuTopology(
    const std::string& sysfs_root = "/sys");

// AffinityCpus()
//
// CPUs in the calling thread's affinity mask (sched_getaffinity), ascending;
// empty if it cannot be read.
std::vector<int> AffinityCpus();

}  // namespace aio_internal
}  // namespace aioco

#endif  // AIOCO_AIO_INTERNAL_CPU_TOPOLOGY_H_
