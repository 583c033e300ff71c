// Design note
//
// State: none of its own. A static initializer (kept by alwayslink) calls
// benchmark::AddCustomContext() before main(), so every binary linking this
// library reports its allocator without any code in the benchmark itself.
//
// Allocator detection, in order:
//   1. dlsym(RTLD_DEFAULT, "mallctl") finds jemalloc's control interface when
//      jemalloc is linked (--config=jemalloc links it as a shared object, so
//      its symbols are global); mallctl("version") names the version.
//   2. dlsym(RTLD_DEFAULT, "tc_malloc") finds tcmalloc.
//   3. Otherwise glibc's malloc, with gnu_get_libc_version().
// dladdr() on the address `malloc` resolves to names the shared object that
// really provides it, which catches the case where a symbol exists but is not
// the one malloc() binds to (e.g. jemalloc built with a prefix).

#include "bench/bench_context.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <sys/utsname.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "benchmark/benchmark.h"

namespace aioco {
namespace bench {
namespace {

using MallctlFn = int (*)(const char*, void*, size_t*, void*, size_t);

std::string Basename(const char* path) {
  if (path == nullptr) return "";
  const char* slash = std::strrchr(path, '/');
  return slash != nullptr ? std::string(slash + 1) : std::string(path);
}

}  // namespace

std::string MallocProvider() {
  // dlsym() in the global scope returns the definition calls bind to, not
  // a PLT stub in the executable (which `&malloc` may be in non-PIE code).
  void* malloc_fn = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info;
  if (malloc_fn == nullptr || dladdr(malloc_fn, &info) == 0) return "";
  return Basename(info.dli_fname);
}

std::string AllocatorName() {
  if (void* sym = dlsym(RTLD_DEFAULT, "mallctl"); sym != nullptr) {
    auto mallctl = reinterpret_cast<MallctlFn>(sym);
    const char* version = nullptr;
    size_t len = sizeof(version);
    if (mallctl("version", &version, &len, nullptr, 0) == 0 &&
        version != nullptr) {
      return std::string("jemalloc ") + version;
    }
    return "jemalloc";
  }
  if (dlsym(RTLD_DEFAULT, "tc_malloc") != nullptr) return "tcmalloc";
  return std::string("glibc ") + gnu_get_libc_version();
}

const char* BuildMode() {
#ifdef NDEBUG
  return "opt";
#else
  return "dbg";
#endif
}

namespace {

const char* SanitizerName() {
#if defined(__SANITIZE_ADDRESS__)
  return "asan";
#elif defined(__SANITIZE_THREAD__)
  return "tsan";
#else
  return "none";
#endif
}

// "model name" from /proc/cpuinfo, and whether the "hypervisor" CPU flag is
// set (the kernel sets it when running under a hypervisor).
void ReadCpuInfo(std::string* model, bool* hypervisor) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    auto value = [&line]() {
      size_t colon = line.find(':');
      if (colon == std::string::npos) return std::string();
      size_t start = line.find_first_not_of(" \t", colon + 1);
      return start == std::string::npos ? std::string() : line.substr(start);
    };
    if (model->empty() && line.rfind("model name", 0) == 0) {
      *model = value();
    } else if (line.rfind("flags", 0) == 0) {
      std::string flags = " " + value() + " ";
      if (flags.find(" hypervisor ") != std::string::npos) *hypervisor = true;
      if (!model->empty()) return;
    }
  }
}

// Registers the context entries before main() runs the benchmarks. The CPU
// model, kernel and hypervisor flag travel with the JSON so that results
// produced on another machine describe that machine.
const bool kRegistered = [] {
  std::string provider = MallocProvider();
  std::string allocator = AllocatorName();
  benchmark::AddCustomContext("allocator", allocator);
  if (!provider.empty()) {
    benchmark::AddCustomContext("malloc_provider", provider);
  }
  benchmark::AddCustomContext("aioco_build", BuildMode());
  benchmark::AddCustomContext("aioco_sanitizer", SanitizerName());
  std::string model;
  bool hypervisor = false;
  ReadCpuInfo(&model, &hypervisor);
  if (!model.empty()) benchmark::AddCustomContext("cpu_model", model);
  benchmark::AddCustomContext("hypervisor_flag", hypervisor ? "yes" : "no");
  struct utsname uts;
  if (uname(&uts) == 0) {
    benchmark::AddCustomContext(
        "kernel", std::string(uts.sysname) + " " + uts.release + " " +
                      uts.machine);
  }
  return true;
}();

}  // namespace
}  // namespace bench
}  // namespace aioco
