// -----------------------------------------------------------------------------
// File: examples/echo_client.h
// -----------------------------------------------------------------------------
//
// RunEchoLoad(): the load generator behind examples/echo_load and
// bench/echo_benchmark. Plain POSIX sockets and epoll (no aioco), so it
// measures any server speaking the echo protocol the same way.
//
// Protocol (examples/echo_server.cc, examples/echo_server_asio.cc): the
// client sends lines ending in '\n'; the server sends every complete line
// back, unchanged and in order. Each line this client sends is unique
// ("c<conn>s<seq>:" then padding), and every byte echoed is compared with
// what was sent, so lost, reordered, corrupted or half-written responses are
// all counted.
//
// Thread safety: RunEchoLoad() may run concurrently with itself; it starts
// and joins its own threads.

#ifndef AIOCO_EXAMPLES_ECHO_CLIENT_H_
#define AIOCO_EXAMPLES_ECHO_CLIENT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace aioco {
namespace echo {

enum class LoadMode {
  kPingPong,  // one request in flight per connection; latency per round trip
  kStream,    // `pipeline` requests in flight per connection
};

struct LoadOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  int connections = 100;
  LoadMode mode = LoadMode::kPingPong;
  // Stop after this long (seconds), or, if requests_per_connection > 0, once
  // every connection has completed that many round trips.
  double duration_s = 5.0;
  int64_t requests_per_connection = 0;
  int line_bytes = 64;  // bytes per request, including the '\n' (>= 16)
  int pipeline = 16;    // requests in flight per connection in kStream mode
  int threads = 1;      // client threads (connections are spread over them)
  int idle_connections = 0;  // extra connections opened and left idle
  // Keep going when the server closes connections (shutdown tests): such
  // connections just stop; requests in flight count as `unanswered`.
  bool tolerate_disconnects = false;
};

struct LoadResult {
  int64_t requests = 0;          // round trips completed and verified
  int64_t bytes = 0;             // bytes echoed back and verified
  double wall_s = 0;             // measured duration
  double qps = 0;                // requests / wall_s
  double p50_us = 0, p99_us = 0, max_us = 0;  // round-trip latency
  int64_t mismatches = 0;        // echoed bytes differing from what was sent
  int64_t half_written = 0;      // connection closed inside a response
  int64_t unanswered = 0;        // whole requests without response at close
  int64_t disconnects = 0;       // connections the server closed or reset
  int64_t connect_failures = 0;  // connections (incl. idle) that failed
  int idle_open = 0;             // idle connections still open at the end

  // One line: "requests=... qps=... p50=...us ...".
  std::string Summary() const;
  // A JSON object with the same fields.
  std::string Json() const;
  // No mismatches, no half-written responses, nothing failed to connect and
  // (unless disconnects were tolerated) no disconnects.
  bool Clean(bool tolerate_disconnects) const;
};

// RunEchoLoad()
//
// Connects, runs the load, closes everything and returns what it measured.
// Errors: bad options (InvalidArgument) or the host cannot be resolved.
// Failures of individual connections are counted in the result.
absl::StatusOr<LoadResult> RunEchoLoad(const LoadOptions& options);

}  // namespace echo
}  // namespace aioco

#endif  // AIOCO_EXAMPLES_ECHO_CLIENT_H_
