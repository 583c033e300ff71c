// echo_load: load generator for examples/echo_server (and the Boost.Asio
// baseline examples/echo_server_asio; any server of the same line-echo
// protocol).
//
//   echo_load --port=7000 --connections=100 --mode=ping_pong --duration=5
//   echo_load --port=7000 --connections=8 --mode=stream --pipeline=32
//
// Prints QPS and the p50/p99 round-trip latency; --json prints the same as a
// JSON object. Every echoed byte is verified; the exit status is 1 if any
// response was wrong, half-written or missing (or a connection failed).

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "examples/echo_client.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "server address");
ABSL_FLAG(int, port, 7000, "server port");
ABSL_FLAG(int, connections, 100, "connections sending requests");
ABSL_FLAG(std::string, mode, "ping_pong",
          "ping_pong (one request in flight per connection) or stream "
          "(--pipeline requests in flight per connection)");
ABSL_FLAG(double, duration, 5.0, "seconds to run");
ABSL_FLAG(int64_t, requests, 0,
          "if > 0: requests per connection, instead of --duration");
ABSL_FLAG(int, size, 64, "bytes per request line, including the newline");
ABSL_FLAG(int, pipeline, 16, "requests in flight per connection (stream mode)");
ABSL_FLAG(int, threads, 1, "client threads");
ABSL_FLAG(int, idle, 0, "extra idle connections held open during the run");
ABSL_FLAG(bool, tolerate_disconnects, false,
          "do not fail when the server closes connections (shutdown tests)");
ABSL_FLAG(bool, json, false, "print the result as JSON");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  aioco::echo::LoadOptions o;
  o.host = absl::GetFlag(FLAGS_host);
  o.port = absl::GetFlag(FLAGS_port);
  o.connections = absl::GetFlag(FLAGS_connections);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "ping_pong") {
    o.mode = aioco::echo::LoadMode::kPingPong;
  } else if (mode == "stream") {
    o.mode = aioco::echo::LoadMode::kStream;
  } else {
    std::fprintf(stderr, "echo_load: --mode must be ping_pong or stream, not %s\n",
                 mode.c_str());
    return 2;
  }
  o.duration_s = absl::GetFlag(FLAGS_duration);
  o.requests_per_connection = absl::GetFlag(FLAGS_requests);
  o.line_bytes = absl::GetFlag(FLAGS_size);
  o.pipeline = absl::GetFlag(FLAGS_pipeline);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.idle_connections = absl::GetFlag(FLAGS_idle);
  o.tolerate_disconnects = absl::GetFlag(FLAGS_tolerate_disconnects);

  absl::StatusOr<aioco::echo::LoadResult> r = aioco::echo::RunEchoLoad(o);
  if (!r.ok()) {
    std::fprintf(stderr, "echo_load: %s\n", r.status().ToString().c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", r->Json().c_str());
  } else {
    std::printf("echo_load: mode=%s connections=%d %s\n", mode.c_str(),
                o.connections, r->Summary().c_str());
  }
  std::fflush(stdout);
  return r->Clean(o.tolerate_disconnects) ? 0 : 1;
}
