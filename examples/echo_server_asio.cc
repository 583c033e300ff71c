// echo_server_asio: the Boost.Asio baseline for examples/echo_server.
//
//   echo_server_asio --port=7001 --threads=4
//
// Same protocol (complete '\n'-terminated lines are echoed, in order; a line
// longer than --max_line gets "ERR line too long" and the connection is
// closed) and the same architecture as the aioco server, so the two can be
// compared directly: one io_context per thread, each with its own
// SO_REUSEPORT acceptor, one session per connection reading with
// async_read_some() and answering every batch of complete lines with one
// async_write().
//
// Shutdown on SIGINT/SIGTERM: the acceptors are closed and each io_context
// is given --shutdown_timeout seconds to finish the writes in progress; then
// the io_contexts are stopped. (Unlike the aioco server, idle connections are
// simply closed, without the FIN-and-drain handshake.)

#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

// Boost 1.74's asio headers use std::exchange without including <utility>.
#include <boost/asio.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "examples/server_process.h"

ABSL_FLAG(std::string, bind, "127.0.0.1", "address to listen on");
ABSL_FLAG(int, port, 7001, "TCP port; 0 picks a free one");
ABSL_FLAG(std::string, port_file, "", "write the port listened on to this file");
ABSL_FLAG(int, threads, 0, "threads; 0 = one per CPU");
ABSL_FLAG(int, max_line, 64 * 1024, "longest accepted line, in bytes");
ABSL_FLAG(double, shutdown_timeout, 5.0,
          "seconds to let writes in progress finish after SIGINT/SIGTERM");

namespace aioco {
namespace echo {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr size_t kInitialBuffer = 4096;
constexpr char kTooLong[] = "ERR line too long\n";

size_t g_max_line = 64 * 1024;
std::atomic<int64_t> g_writes_in_progress{0};

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket)
      : socket_(std::move(socket)), buf_(kInitialBuffer) {}

  void Start() {
    socket_.set_option(tcp::no_delay(true));
    Read();
  }

 private:
  void Read() {
    if (len_ == buf_.size()) {
      buf_.resize(std::min(buf_.size() * 2, g_max_line + kInitialBuffer));
    }
    socket_.async_read_some(
        asio::buffer(buf_.data() + len_, buf_.size() - len_),
        [self = shared_from_this()](const boost::system::error_code& ec,
                                    size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(const boost::system::error_code& ec, size_t n) {
    if (ec) return;  // EOF or error: the session (and socket) is released
    const size_t old = len_;
    len_ += n;
    const char* nl =
        static_cast<const char*>(memrchr(buf_.data() + old, '\n', n));
    if (nl == nullptr) {
      if (len_ > g_max_line) {
        std::fprintf(stderr, "echo_server_asio: line longer than %zu bytes; closing\n",
                     g_max_line);
        g_writes_in_progress.fetch_add(1, std::memory_order_relaxed);
        asio::async_write(socket_, asio::buffer(kTooLong, sizeof(kTooLong) - 1),
                          [self = shared_from_this()](
                              const boost::system::error_code&, size_t) {
                            g_writes_in_progress.fetch_sub(1, std::memory_order_relaxed);
                            boost::system::error_code ignored;
                            self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                          });
        return;
      }
      Read();
      return;
    }
    const size_t upto = static_cast<size_t>(nl - buf_.data()) + 1;
    // Relaxed: a progress count polled during shutdown.
    g_writes_in_progress.fetch_add(1, std::memory_order_relaxed);
    asio::async_write(
        socket_, asio::buffer(buf_.data(), upto),
        [self = shared_from_this(), upto](const boost::system::error_code& ec,
                                          size_t) {
          // Relaxed: as above.
          g_writes_in_progress.fetch_sub(1, std::memory_order_relaxed);
          if (ec) return;
          std::memmove(self->buf_.data(), self->buf_.data() + upto,
                       self->len_ - upto);
          self->len_ -= upto;
          self->Read();
        });
  }

  tcp::socket socket_;
  std::vector<char> buf_;
  size_t len_ = 0;
};

class Acceptor {
 public:
  Acceptor(asio::io_context& ioc, const tcp::endpoint& ep)
      : acceptor_(ioc) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.set_option(ReusePort(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  void Start() {
    acceptor_.async_accept([this](const boost::system::error_code& ec,
                                  tcp::socket socket) {
      if (!acceptor_.is_open()) return;
      if (!ec) {
        std::make_shared<Session>(std::move(socket))->Start();
      } else if (ec == asio::error::no_descriptors) {
        std::fprintf(stderr, "echo_server_asio: accept: %s\n", ec.message().c_str());
      }
      Start();
    });
  }

  void Close() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  tcp::acceptor acceptor_;
};

int Main() {
  g_max_line = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_max_line)));
  const sigset_t stop_signals = BlockStopSignals();

  int threads = absl::GetFlag(FLAGS_threads);
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;

  boost::system::error_code ec;
  asio::ip::address addr = asio::ip::make_address(absl::GetFlag(FLAGS_bind), ec);
  if (ec) {
    std::fprintf(stderr, "echo_server_asio: bad --bind: %s\n", ec.message().c_str());
    return 2;
  }
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<std::unique_ptr<Acceptor>> acceptors;
  int port = absl::GetFlag(FLAGS_port);
  try {
    for (int i = 0; i < threads; ++i) {
      contexts.push_back(std::make_unique<asio::io_context>(1));
      acceptors.push_back(std::make_unique<Acceptor>(
          *contexts.back(), tcp::endpoint(addr, static_cast<uint16_t>(port))));
      if (port == 0) port = acceptors.back()->port();
    }
  } catch (const boost::system::system_error& e) {
    std::fprintf(stderr, "echo_server_asio: cannot listen on port %d: %s\n", port,
                 e.what());
    return 1;
  }
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    acceptors[i]->Start();
    workers.emplace_back([&ioc = *contexts[i]] { ioc.run(); });
  }
  WritePortFile(absl::GetFlag(FLAGS_port_file), port);
  std::fprintf(stderr, "echo_server_asio: listening on %s:%d with %d threads\n",
               absl::GetFlag(FLAGS_bind).c_str(), port, threads);

  const int sig = WaitForStopSignal(stop_signals);
  std::fprintf(stderr, "echo_server_asio: %s: stopping\n", strsignal(sig));
  for (int i = 0; i < threads; ++i) {
    asio::post(*contexts[i], [a = acceptors[i].get()] { a->Close(); });
  }
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration<double>(absl::GetFlag(FLAGS_shutdown_timeout));
  // Relaxed: progress polling.
  while (g_writes_in_progress.load(std::memory_order_relaxed) > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& ioc : contexts) ioc->stop();
  for (auto& t : workers) t.join();
  acceptors.clear();
  contexts.clear();
  std::fprintf(stderr, "echo_server_asio: shutdown complete\n");
  return 0;
}

}  // namespace
}  // namespace echo
}  // namespace aioco

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return aioco::echo::Main();
}
