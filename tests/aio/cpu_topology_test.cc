// Tests for aio/internal/cpu_topology.h on fake sysfs trees.

#include "aio/internal/cpu_topology.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "tests/aio/fake_sysfs.h"
#include "gtest/gtest.h"

namespace aioco {
namespace aio_internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using aio_testing::FakeSysfs;

TEST(ParseCpuListTest, RangesAndSingles) {
  EXPECT_THAT(*ParseCpuList("0-3,8,10-11\n"), ElementsAre(0, 1, 2, 3, 8, 10, 11));
  EXPECT_THAT(*ParseCpuList("5"), ElementsAre(5));
  EXPECT_THAT(*ParseCpuList("3,1-2,2"), ElementsAre(1, 2, 3));
  EXPECT_THAT(*ParseCpuList("\n"), IsEmpty());
}

TEST(ParseCpuListTest, RejectsGarbage) {
  for (const char* bad : {"a", "1-", "-1", "3-1", "1,,2", "1-2-3", "99999999"}) {
    absl::StatusOr<std::vector<int>> r = ParseCpuList(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("bad CPU list token"));
  }
}

TEST(CpuTopologyTest, TwoNodesWithSmt) {
  FakeSysfs fs;
  fs.Online("0-7");
  fs.Node(0, "0-1,4-5");
  fs.Node(1, "2-3,6-7");
  // Cores: {0,4} {1,5} {2,6} {3,7}.
  for (int c = 0; c < 4; ++c) {
    std::string list = std::to_string(c) + "," + std::to_string(c + 4);
    fs.Siblings(c, list);
    fs.Siblings(c + 4, list);
  }
  absl::StatusOr<CpuTopology> topo = ReadCpuTopology(fs.root());
  ASSERT_TRUE(topo.ok()) << topo.status();
  EXPECT_THAT(topo->online, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  ASSERT_EQ(topo->nodes.size(), 2u);
  EXPECT_EQ(topo->nodes[0].id, 0);
  EXPECT_THAT(topo->nodes[0].cpus, ElementsAre(0, 1, 4, 5));
  EXPECT_EQ(topo->nodes[1].id, 1);
  EXPECT_THAT(topo->nodes[1].cpus, ElementsAre(2, 3, 6, 7));
  EXPECT_EQ(topo->NodeOf(5), 0);
  EXPECT_EQ(topo->NodeOf(6), 1);
  EXPECT_EQ(topo->NodeOf(8), -1);
  EXPECT_EQ(topo->core_of[4], 0);
  EXPECT_EQ(topo->core_of[7], 3);
  // Physical cores first, nodes interleaved, then SMT siblings.
  EXPECT_THAT(topo->PlacementOrder(), ElementsAre(0, 2, 1, 3, 4, 6, 5, 7));
}

TEST(CpuTopologyTest, OfflineCpusAndSparseNodes) {
  FakeSysfs fs;
  fs.Online("0-2,5");
  fs.Node(0, "0-3");
  fs.Node(2, "4-7");  // node ids need not be contiguous
  fs.Write("devices/system/node/node3/cpulist", "\n");  // memory-only node
  fs.Write("devices/system/node/online", "0,2-3\n");    // not a node dir
  absl::StatusOr<CpuTopology> topo = ReadCpuTopology(fs.root());
  ASSERT_TRUE(topo.ok()) << topo.status();
  EXPECT_THAT(topo->online, ElementsAre(0, 1, 2, 5));
  ASSERT_EQ(topo->nodes.size(), 2u);
  EXPECT_THAT(topo->nodes[0].cpus, ElementsAre(0, 1, 2));
  EXPECT_EQ(topo->nodes[1].id, 2);
  EXPECT_THAT(topo->nodes[1].cpus, ElementsAre(5));
  // No siblings file: each CPU is its own core.
  EXPECT_EQ(topo->core_of[5], 5);
  EXPECT_EQ(topo->core_of[3], -1);
  EXPECT_THAT(topo->PlacementOrder(), ElementsAre(0, 5, 1, 2));
}

TEST(CpuTopologyTest, NoNumaInformationMeansOneNode) {
  FakeSysfs fs;
  fs.Online("0-3");
  absl::StatusOr<CpuTopology> topo = ReadCpuTopology(fs.root());
  ASSERT_TRUE(topo.ok()) << topo.status();
  ASSERT_EQ(topo->nodes.size(), 1u);
  EXPECT_EQ(topo->nodes[0].id, 0);
  EXPECT_THAT(topo->nodes[0].cpus, ElementsAre(0, 1, 2, 3));
}

TEST(CpuTopologyTest, CpuMissingFromNodeListsGoesToLowestNode) {
  FakeSysfs fs;
  fs.Online("0-3");
  fs.Node(1, "0-1");
  fs.Node(4, "2");
  absl::StatusOr<CpuTopology> topo = ReadCpuTopology(fs.root());
  ASSERT_TRUE(topo.ok()) << topo.status();
  ASSERT_EQ(topo->nodes.size(), 2u);
  EXPECT_EQ(topo->nodes[0].id, 1);
  EXPECT_THAT(topo->nodes[0].cpus, ElementsAre(0, 1, 3));
  EXPECT_THAT(topo->nodes[1].cpus, ElementsAre(2));
}

TEST(CpuTopologyTest, Restrict) {
  FakeSysfs fs;
  fs.Online("0-7");
  fs.Node(0, "0-3");
  fs.Node(1, "4-7");
  absl::StatusOr<CpuTopology> topo = ReadCpuTopology(fs.root());
  ASSERT_TRUE(topo.ok()) << topo.status();
  topo->Restrict({1, 2, 9});
  EXPECT_THAT(topo->online, ElementsAre(1, 2));
  ASSERT_EQ(topo->nodes.size(), 1u);
  EXPECT_THAT(topo->nodes[0].cpus, ElementsAre(1, 2));
  EXPECT_EQ(topo->NodeOf(5), -1);
  EXPECT_THAT(topo->PlacementOrder(), ElementsAre(1, 2));
}

TEST(CpuTopologyTest, Errors) {
  FakeSysfs missing;
  absl::StatusOr<CpuTopology> topo = ReadCpuTopology(missing.root());
  EXPECT_EQ(topo.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(topo.status().message()), HasSubstr("online"));

  FakeSysfs bad;
  bad.Online("0-x");
  topo = ReadCpuTopology(bad.root());
  EXPECT_EQ(topo.status().code(), absl::StatusCode::kInvalidArgument);

  FakeSysfs bad_node;
  bad_node.Online("0-1");
  bad_node.Node(0, "zz");
  topo = ReadCpuTopology(bad_node.root());
  EXPECT_EQ(topo.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(topo.status().message()), HasSubstr("node0/cpulist"));
}

TEST(CpuTopologyTest, RealSysfsAgreesWithAffinity) {
  absl::StatusOr<CpuTopology> topo = ReadCpuTopology();
  ASSERT_TRUE(topo.ok()) << topo.status();
  ASSERT_FALSE(topo->nodes.empty());
  size_t in_nodes = 0;
  for (const NumaNode& n : topo->nodes) in_nodes += n.cpus.size();
  EXPECT_EQ(in_nodes, topo->online.size());
  std::vector<int> allowed = AffinityCpus();
  ASSERT_FALSE(allowed.empty());
  // Every CPU this process may run on is online.
  for (int c : allowed) EXPECT_NE(topo->NodeOf(c), -1) << "cpu " << c;
}

}  // namespace
}  // namespace aio_internal
}  // namespace aioco
