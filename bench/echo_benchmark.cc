// Echo server benchmark: examples/echo_server (aioco) against
// examples/echo_server_asio (Boost.Asio), same protocol, same load, plus
// bench/echo_server_uring_floor, a hand-written io_uring loop with no runtime
// and no line framing: the floor that shows how much of a request's CPU time
// the kernel takes whatever the runtime does.
//
//   echo/ping_pong_100conn/{aioco,asio,uring_floor}   100 connections, one
//       request in flight each, one server thread. Time per iteration is the
//       server's CPU time (manual time), so items_per_second is requests per
//       second per server core ("QPS per core") and the report's ratio is the
//       CPU cost per request of aioco over the baseline's.
//   echo/stream_8conn/{...}               8 connections, 16 requests in
//       flight each, one server thread; same accounting.
//   echo_scaling/ping_pong/{...}/threads:N   N server threads, 50*N
//       connections, wall-clock time: items_per_second is total QPS. Only
//       for N <= CPUs / 2 (the load generator needs the other half), and only
//       on machines with at least 4 CPUs.
//
// Each benchmark run starts the server as a child process on an ephemeral
// loopback port, warms it up, runs the load from this process
// (examples/echo_client) and stops the server with SIGTERM, checking that it
// exits cleanly. Server CPU time is the sum of its threads' run time from
// /proc/<pid>/task/*/schedstat (ns resolution), or utime+stime from
// /proc/<pid>/stat where schedstat is unavailable. A server that cannot
// start (the floor needs Linux 6.1) gives an error row, not a number.
//
// The server binaries are found next to this binary's runfiles
// (<argv0>.runfiles/aioco/{examples,bench}/...) or in the bazel-bin tree
// (<dir of argv0>/../{examples,bench}/...); --echo_server=PATH,
// --echo_server_asio=PATH and --echo_server_uring_floor=PATH override.

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "examples/echo_client.h"

extern char** environ;

namespace {

using aioco::echo::LoadMode;
using aioco::echo::LoadOptions;
using aioco::echo::LoadResult;
using aioco::echo::RunEchoLoad;

// The servers, in the order of kImpls.
constexpr int kNumImpls = 3;
const char* const kImpls[kNumImpls] = {"aioco", "asio", "uring_floor"};
std::string g_server_paths[kNumImpls];

bool IsExecutable(const std::string& path) {
  return access(path.c_str(), X_OK) == 0;
}

std::string FindServer(const std::string& argv0, const std::string& package,
                       const std::string& name) {
  std::string dir = argv0.substr(0, argv0.find_last_of('/') + 1);
  for (const std::string& candidate :
       {argv0 + ".runfiles/aioco/" + package + "/" + name,
        dir + "../" + package + "/" + name}) {
    if (IsExecutable(candidate)) return candidate;
  }
  return "";
}

// CPU time used so far by all threads of `pid`, in seconds.
double ProcessCpuSeconds(pid_t pid) {
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  double total = 0;
  bool any = false;
  if (DIR* d = opendir(task_dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(task_dir + "/" + e->d_name + "/schedstat");
      unsigned long long run_ns = 0;
      if (in >> run_ns) {
        total += static_cast<double>(run_ns) / 1e9;
        any = true;
      }
    }
    closedir(d);
  }
  if (any) return total;
  // Fallback: utime + stime (fields 14 and 15) in clock ticks.
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  size_t close_paren = line.rfind(')');
  if (close_paren == std::string::npos) return 0;
  std::istringstream rest(line.substr(close_paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

class ServerProcess {
 public:
  // Starts `path --port=0 --port_file=... --threads=N` and waits for it to
  // listen. ok() is false (with error()) if it did not come up.
  ServerProcess(const std::string& path, int threads) {
    char dir_template[] = "/tmp/echo_benchmark.XXXXXX";
    const char* dir = mkdtemp(dir_template);
    if (dir == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = dir;
    port_file_ = dir_ + "/port";
    std::vector<std::string> args = {
        path, "--port=0", "--port_file=" + port_file_,
        "--threads=" + std::to_string(threads)};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    std::string log = dir_ + "/server.log";
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv.data(),
                         environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      error_ = "cannot start " + path + ": " + std::strerror(rc);
      pid_ = -1;
      return;
    }
    for (int i = 0; i < 1000 && port_ == 0; ++i) {
      std::ifstream in(port_file_);
      if (!(in >> port_)) {
        port_ = 0;
        int status;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          error_ = path + " exited during startup (see " + log + ")";
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    if (port_ == 0) error_ = path + " did not start listening within 10 s";
  }

  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }

  // SIGTERM, wait; true if it exited with status 0.
  bool Stop() {
    if (pid_ <= 0) return false;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      error_ = "server did not exit cleanly (see " + dir_ + "/server.log)";
      return false;
    }
    return true;
  }

 private:
  std::string dir_, port_file_, error_;
  pid_t pid_ = -1;
  int port_ = 0;
};

struct Scenario {
  int impl;            // index into g_server_paths
  int server_threads;
  LoadOptions load;
  bool per_core;       // manual time = server CPU time (else wall time)
};

void RunScenario(benchmark::State& state, Scenario sc) {
  const std::string& path = g_server_paths[sc.impl];
  if (path.empty()) {
    state.SkipWithError("server binary not found (build //examples:all)");
    return;
  }
  ServerProcess server(path, sc.server_threads);
  if (!server.ok()) {
    state.SkipWithError(server.error().c_str());
    return;
  }
  sc.load.port = server.port();
  // Warm-up: connections, coroutine pools, caches.
  LoadOptions warm = sc.load;
  warm.requests_per_connection = 20;
  if (absl::StatusOr<LoadResult> r = RunEchoLoad(warm); !r.ok() || !r->Clean(false)) {
    state.SkipWithError("warm-up load failed");
    return;
  }
  int64_t requests = 0;
  double wall = 0, cpu = 0;
  std::vector<double> p50, p99;
  for (auto _ : state) {
    double cpu0 = ProcessCpuSeconds(server.pid());
    absl::StatusOr<LoadResult> r = RunEchoLoad(sc.load);
    double cpu1 = ProcessCpuSeconds(server.pid());
    if (!r.ok() || !r->Clean(false)) {
      state.SkipWithError(r.ok() ? ("load not clean: " + r->Summary()).c_str()
                                 : "load failed");
      return;
    }
    requests += r->requests;
    wall += r->wall_s;
    cpu += cpu1 - cpu0;
    p50.push_back(r->p50_us);
    p99.push_back(r->p99_us);
    state.SetIterationTime(sc.per_core ? cpu1 - cpu0 : r->wall_s);
  }
  if (!server.Stop()) {
    state.SkipWithError(server.error().c_str());
    return;
  }
  state.SetItemsProcessed(requests);
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / v.size();
  };
  state.counters["qps"] = wall > 0 ? requests / wall : 0;
  state.counters["server_cores"] = wall > 0 ? cpu / wall : 0;
  state.counters["p50_us"] = mean(p50);
  state.counters["p99_us"] = mean(p99);
}

void Register(const std::string& name, Scenario sc, int iterations) {
  benchmark::RegisterBenchmark(name.c_str(), RunScenario, sc)
      ->UseManualTime()
      ->Iterations(iterations)
      ->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
  std::string argv0 = argv[0];
  g_server_paths[0] = FindServer(argv0, "examples", "echo_server");
  g_server_paths[1] = FindServer(argv0, "examples", "echo_server_asio");
  g_server_paths[2] = FindServer(argv0, "bench", "echo_server_uring_floor");
  int scaling_max = -1;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--echo_server=", 0) == 0) {
      g_server_paths[0] = a.substr(14);
    } else if (a.rfind("--echo_server_asio=", 0) == 0) {
      g_server_paths[1] = a.substr(19);
    } else if (a.rfind("--echo_server_uring_floor=", 0) == 0) {
      g_server_paths[2] = a.substr(26);
    } else if (a.rfind("--echo_scaling_max=", 0) == 0) {
      scaling_max = std::atoi(a.c_str() + 19);
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 1;

  for (int impl = 0; impl < kNumImpls; ++impl) {
    Scenario pp{impl, 1, LoadOptions{}, true};
    pp.load.connections = 100;
    pp.load.mode = LoadMode::kPingPong;
    pp.load.requests_per_connection = 200;
    pp.load.threads = 1;
    Register(std::string("echo/ping_pong_100conn/") + kImpls[impl], pp, 3);

    Scenario st{impl, 1, LoadOptions{}, true};
    st.load.connections = 8;
    st.load.mode = LoadMode::kStream;
    st.load.pipeline = 16;
    st.load.requests_per_connection = 5000;
    st.load.threads = 1;
    Register(std::string("echo/stream_8conn/") + kImpls[impl], st, 3);
  }

  const int cpus = static_cast<int>(std::thread::hardware_concurrency());
  if (scaling_max < 0) scaling_max = cpus >= 4 ? cpus / 2 : 0;
  for (int n = 1; n <= scaling_max; n *= 2) {
    for (int impl = 0; impl < kNumImpls; ++impl) {
      Scenario sc{impl, n, LoadOptions{}, false};
      sc.load.connections = 50 * n;
      sc.load.mode = LoadMode::kPingPong;
      sc.load.requests_per_connection = 200;
      sc.load.threads = std::max(1, cpus - n);
      Register(std::string("echo_scaling/ping_pong/") + kImpls[impl] +
                   "/threads:" + std::to_string(n),
               sc, 2);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
