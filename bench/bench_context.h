// -----------------------------------------------------------------------------
// File: bench/bench_context.h
// -----------------------------------------------------------------------------
//
// Run context every aioco benchmark binary reports: linking //bench:bench_context
// adds "allocator", "aioco_build" and "aioco_sanitizer" entries to Google
// Benchmark's context (the JSON "context" object and the console header), so
// tools/report.py can say which malloc and which build actually ran.
//
// Thread safety: all functions are thread-safe (they only read process state).

#ifndef AIOCO_BENCH_BENCH_CONTEXT_H_
#define AIOCO_BENCH_BENCH_CONTEXT_H_

#include <string>

namespace aioco {
namespace bench {

// AllocatorName()
//
// The malloc implementation this process really uses, found at run time, not
// from build flags: "jemalloc <version>" when jemalloc's mallctl() is linked
// and answers, "tcmalloc" when tcmalloc's entry points are present, otherwise
// "glibc <version>". The name is prefixed by the shared object that provides
// malloc when that can be determined, e.g. "jemalloc 5.3.0-0-g54eaed1d8b56".
std::string AllocatorName();

// MallocProvider()
//
// File name of the shared object (or the executable) that provides the
// `malloc` symbol this process calls, e.g. "libjemalloc.so.2" or "libc.so.6";
// empty if it cannot be determined.
std::string MallocProvider();

// BuildMode()
//
// "opt" when compiled with NDEBUG (as --config=opt does), "dbg" otherwise.
const char* BuildMode();

}  // namespace bench
}  // namespace aioco

#endif  // AIOCO_BENCH_BENCH_CONTEXT_H_
