// Design note
//
// State: none; every call reads sysfs afresh and returns a value.
//
// Reading, in order:
//   1. <root>/devices/system/cpu/online gives the online CPUs (required).
//   2. <root>/devices/system/node/node<N>/cpulist for every node<N> directory
//      gives each node's CPUs; they are intersected with the online set.
//      No node directory at all (non-NUMA kernel or a container hiding it)
//      means one node 0 with everything.
//   3. <root>/devices/system/cpu/cpu<N>/topology/thread_siblings_list names
//      each online CPU's SMT siblings; the lowest sibling identifies the core.
// Placement interleaves nodes and puts one CPU per core before any sibling.

#include "aio/internal/cpu_topology.h"

#include <dirent.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace aioco {
namespace aio_internal {
namespace {

// Upper bound on CPU numbers accepted from sysfs, so a corrupt file cannot
// make us allocate without limit (Linux's NR_CPUS maximum is 8192).
constexpr int kMaxCpu = 1 << 15;

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Names of entries "node<digits>" in `dir`, as node ids.
std::vector<int> ListNodes(const std::string& dir) {
  std::vector<int> ids;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ids;
  while (struct dirent* e = readdir(d)) {
    absl::string_view name(e->d_name);
    if (!absl::ConsumePrefix(&name, "node") || name.empty()) continue;
    int id;
    if (absl::SimpleAtoi(name, &id) && id >= 0 &&
        name.find_first_not_of("0123456789") == absl::string_view::npos) {
      ids.push_back(id);
    }
  }
  closedir(d);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseCpuList(absl::string_view text) {
  std::set<int> cpus;
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return std::vector<int>();
  auto is_number = [](absl::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789") == absl::string_view::npos;
  };
  for (absl::string_view token : absl::StrSplit(text, ',')) {
    token = absl::StripAsciiWhitespace(token);
    size_t dash = token.find('-');
    absl::string_view first = token.substr(0, dash);
    absl::string_view last =
        dash == absl::string_view::npos ? first : token.substr(dash + 1);
    int lo = 0, hi = 0;
    if (!is_number(first) || !is_number(last) || !absl::SimpleAtoi(first, &lo) ||
        !absl::SimpleAtoi(last, &hi) || lo > hi || hi >= kMaxCpu) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad CPU list token \"", token, "\" in \"", text, "\""));
    }
    for (int c = lo; c <= hi; ++c) cpus.insert(c);
  }
  return std::vector<int>(cpus.begin(), cpus.end());
}

int CpuTopology::NodeOf(int cpu) const {
  for (const NumaNode& node : nodes) {
    if (std::binary_search(node.cpus.begin(), node.cpus.end(), cpu)) {
      return node.id;
    }
  }
  return -1;
}

void CpuTopology::Restrict(const std::vector<int>& allowed) {
  std::set<int> keep(allowed.begin(), allowed.end());
  auto drop = [&keep](std::vector<int>* v) {
    v->erase(std::remove_if(v->begin(), v->end(),
                            [&keep](int c) { return keep.count(c) == 0; }),
             v->end());
  };
  drop(&online);
  for (NumaNode& node : nodes) drop(&node.cpus);
  nodes.erase(std::remove_if(nodes.begin(), nodes.end(),
                             [](const NumaNode& n) { return n.cpus.empty(); }),
              nodes.end());
  for (size_t c = 0; c < core_of.size(); ++c) {
    if (keep.count(static_cast<int>(c)) == 0) core_of[c] = -1;
  }
}

std::vector<int> CpuTopology::PlacementOrder() const {
  // Per node: first CPUs of distinct cores, then the siblings.
  std::vector<std::vector<int>> primary(nodes.size()), secondary(nodes.size());
  for (size_t n = 0; n < nodes.size(); ++n) {
    std::set<int> cores_seen;
    for (int cpu : nodes[n].cpus) {
      int core = (cpu < static_cast<int>(core_of.size()) && core_of[cpu] >= 0)
                     ? core_of[cpu]
                     : cpu;
      (cores_seen.insert(core).second ? primary[n] : secondary[n]).push_back(cpu);
    }
  }
  std::vector<int> order;
  for (auto* tier : {&primary, &secondary}) {
    for (size_t i = 0;; ++i) {
      bool any = false;
      for (const std::vector<int>& list : *tier) {
        if (i < list.size()) {
          order.push_back(list[i]);
          any = true;
        }
      }
      if (!any) break;
    }
  }
  return order;
}

absl::StatusOr<CpuTopology> ReadCpuTopology(const std::string& sysfs_root) {
  const std::string cpu_dir = sysfs_root + "/devices/system/cpu";
  const std::string node_dir = sysfs_root + "/devices/system/node";
  std::string text;
  if (!ReadFile(cpu_dir + "/online", &text)) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", cpu_dir, "/online: ", std::strerror(errno)));
  }
  absl::StatusOr<std::vector<int>> online = ParseCpuList(text);
  if (!online.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        cpu_dir, "/online: ", online.status().message()));
  }
  CpuTopology topo;
  topo.online = *std::move(online);
  if (topo.online.empty()) {
    return absl::FailedPreconditionError(cpu_dir + "/online lists no CPU");
  }
  std::set<int> online_set(topo.online.begin(), topo.online.end());
  std::set<int> placed;
  for (int id : ListNodes(node_dir)) {
    std::string path = absl::StrCat(node_dir, "/node", id, "/cpulist");
    if (!ReadFile(path, &text)) continue;
    absl::StatusOr<std::vector<int>> cpus = ParseCpuList(text);
    if (!cpus.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", cpus.status().message()));
    }
    NumaNode node;
    node.id = id;
    for (int c : *cpus) {
      if (online_set.count(c) != 0 && placed.insert(c).second) {
        node.cpus.push_back(c);
      }
    }
    if (!node.cpus.empty()) topo.nodes.push_back(std::move(node));
  }
  if (topo.nodes.empty()) {
    topo.nodes.push_back(NumaNode{0, topo.online});
  } else if (placed.size() != online_set.size()) {
    NumaNode& lowest = topo.nodes.front();
    for (int c : topo.online) {
      if (placed.count(c) == 0) lowest.cpus.push_back(c);
    }
    std::sort(lowest.cpus.begin(), lowest.cpus.end());
  }
  topo.core_of.assign(topo.online.back() + 1, -1);
  for (int c : topo.online) {
    topo.core_of[c] = c;
    std::string path = absl::StrCat(cpu_dir, "/cpu", c,
                                     "/topology/thread_siblings_list");
    if (!ReadFile(path, &text)) continue;
    absl::StatusOr<std::vector<int>> siblings = ParseCpuList(text);
    if (siblings.ok() && !siblings->empty()) topo.core_of[c] = siblings->front();
  }
  return topo;
}

std::vector<int> AffinityCpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

}  // namespace aio_internal
}  // namespace aioco
