// -----------------------------------------------------------------------------
// File: tests/aio/fake_sysfs.h
// -----------------------------------------------------------------------------
//
// FakeSysfs: a scratch sysfs tree under TEST_TMPDIR for the CPU topology and
// IoThreadGroup tests (the root is passed where /sys would be read).
//
// Thread safety: thread-compatible; used by one test thread.

#ifndef AIOCO_TESTS_AIO_FAKE_SYSFS_H_
#define AIOCO_TESTS_AIO_FAKE_SYSFS_H_

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace aioco {
namespace aio_testing {

class FakeSysfs {
 public:
  FakeSysfs() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string templ = std::string(tmp ? tmp : "/tmp") + "/sysfs.XXXXXX";
    root_ = mkdtemp(templ.data());
  }
  const std::string& root() const { return root_; }

  // Writes `content` to root/rel, creating the directories on the way.
  void Write(const std::string& rel, const std::string& content) {
    std::string path = root_ + "/" + rel;
    for (size_t i = root_.size() + 1; i < path.size(); ++i) {
      if (path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
    }
    std::ofstream(path) << content;
  }
  void Online(const std::string& list) {
    Write("devices/system/cpu/online", list + "\n");
  }
  void Node(int id, const std::string& list) {
    Write("devices/system/node/node" + std::to_string(id) + "/cpulist", list + "\n");
  }
  void Siblings(int cpu, const std::string& list) {
    Write("devices/system/cpu/cpu" + std::to_string(cpu) +
              "/topology/thread_siblings_list",
          list + "\n");
  }

 private:
  std::string root_;
};

}  // namespace aio_testing
}  // namespace aioco

#endif  // AIOCO_TESTS_AIO_FAKE_SYSFS_H_
