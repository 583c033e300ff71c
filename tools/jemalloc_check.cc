// jemalloc_check: verifies which malloc this binary really runs with.
//
//   jemalloc_check --expect=jemalloc   succeeds only if malloc() is jemalloc's
//   jemalloc_check --expect=glibc      succeeds only if malloc() is glibc's
//
// Design note
//
// Nothing is trusted from build flags. The checks, in order:
//   1. Which shared object provides the `malloc` the process calls
//      (dlsym + dladdr, via //bench:bench_context's MallocProvider()).
//   2. jemalloc: its mallctl() must be present and answer "version", and
//      "thread.allocated" (bytes this thread has allocated) must grow by at
//      least 1 MiB across a 1 MiB malloc(): only jemalloc's own accounting can
//      see that allocation.
//      glibc: there must be no mallctl(), and glibc's mallinfo2() must see the
//      1 MiB block (it is above the mmap threshold, so "hblkhd", bytes in
//      mmap'ed blocks, grows by at least 1 MiB).
//   3. The allocator name the benchmark binaries report (AllocatorName(),
//      what tools/report.py prints) must agree.
// Prints one line per check and "OK: malloc is <name>" or "FAIL: <why>".

#include <dlfcn.h>
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/bench_context.h"

namespace {

using MallctlFn = int (*)(const char*, void*, size_t*, void*, size_t);

constexpr size_t kBlock = size_t{1} << 20;

int Fail(const std::string& why) {
  std::printf("FAIL: %s\n", why.c_str());
  return 1;
}

// Allocates and touches kBlock bytes; the volatile pointer keeps the compiler
// from pairing and eliding the malloc()/free().
void* volatile g_block = nullptr;

void AllocateBlock() {
  g_block = std::malloc(kBlock);
  if (g_block != nullptr) std::memset(g_block, 0x5a, kBlock);
}

void FreeBlock() {
  std::free(g_block);
  g_block = nullptr;
}

int CheckJemalloc(const std::string& provider, const std::string& name) {
  void* sym = dlsym(RTLD_DEFAULT, "mallctl");
  if (sym == nullptr) return Fail("mallctl() not found: jemalloc is not linked");
  auto mallctl = reinterpret_cast<MallctlFn>(sym);
  const char* version = nullptr;
  size_t len = sizeof(version);
  if (mallctl("version", &version, &len, nullptr, 0) != 0 || version == nullptr) {
    return Fail("mallctl(\"version\") failed");
  }
  std::printf("jemalloc version: %s\n", version);
  uint64_t before = 0, after = 0;
  len = sizeof(before);
  if (mallctl("thread.allocated", &before, &len, nullptr, 0) != 0) {
    return Fail("mallctl(\"thread.allocated\") failed (jemalloc built without stats?)");
  }
  AllocateBlock();
  len = sizeof(after);
  int rc = mallctl("thread.allocated", &after, &len, nullptr, 0);
  FreeBlock();
  if (rc != 0) return Fail("mallctl(\"thread.allocated\") failed");
  std::printf("thread.allocated moved by %llu bytes for a %zu byte malloc()\n",
              static_cast<unsigned long long>(after - before), kBlock);
  if (after - before < kBlock) {
    return Fail("jemalloc did not see the 1 MiB malloc(): malloc() is not jemalloc's");
  }
  if (provider.find("jemalloc") == std::string::npos) {
    return Fail("malloc is provided by " + provider + ", not libjemalloc");
  }
  if (name.rfind("jemalloc", 0) != 0) {
    return Fail("benchmarks would report allocator \"" + name + "\"");
  }
  return 0;
}

int CheckGlibc(const std::string& provider, const std::string& name) {
  if (dlsym(RTLD_DEFAULT, "mallctl") != nullptr) {
    return Fail("mallctl() is present: jemalloc is linked");
  }
  struct mallinfo2 before = mallinfo2();
  AllocateBlock();
  struct mallinfo2 after = mallinfo2();
  FreeBlock();
  std::printf("glibc mallinfo2().hblkhd moved by %zu bytes for a %zu byte malloc()\n",
              after.hblkhd - before.hblkhd, kBlock);
  if (after.hblkhd < before.hblkhd + kBlock) {
    return Fail("glibc's malloc did not serve the 1 MiB malloc()");
  }
  if (provider.rfind("libc.so", 0) != 0) {
    return Fail("malloc is provided by " + provider + ", not libc");
  }
  if (name.rfind("glibc", 0) != 0) {
    return Fail("benchmarks would report allocator \"" + name + "\"");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string expect;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--expect=", 9) == 0) expect = argv[i] + 9;
  }
  if (expect != "jemalloc" && expect != "glibc") {
    std::fprintf(stderr, "usage: %s --expect=jemalloc|glibc\n", argv[0]);
    return 2;
  }
  const std::string provider = aioco::bench::MallocProvider();
  const std::string name = aioco::bench::AllocatorName();
  std::printf("malloc provided by: %s\n", provider.empty() ? "?" : provider.c_str());
  std::printf("reported allocator: %s\n", name.c_str());
  int rc = expect == "jemalloc" ? CheckJemalloc(provider, name)
                                : CheckGlibc(provider, name);
  if (rc != 0) return rc;
  std::printf("OK: malloc is %s\n", name.c_str());
  return 0;
}
