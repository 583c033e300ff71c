// echo_server_uring_floor: a hand-written io_uring echo loop, with no
// runtime and no framing, as a floor for bench/echo_benchmark.
//
//   echo_server_uring_floor --port=0 --port_file=/tmp/p --threads=1
//
// It answers what examples/echo_server and examples/echo_server_asio answer
// a well-behaved client (each line it sends comes back once, in order), but
// does the least work the kernel allows per request, so that the benchmark
// can show how much of a request's CPU time is left for any runtime to save:
//   - bytes are echoed as they arrive, without looking for line ends (no
//     line-length limit, no "ERR line too long");
//   - one ring per thread (IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN, so
//     completions are processed in batches, only when the thread asks), each
//     with its own SO_REUSEPORT listening socket;
//   - connections are accepted by one multi-shot accept straight into the
//     ring's fixed-file table (no fd lookups per operation), read by one
//     multi-shot receive per connection into a ring of provided buffers, and
//     answered by sends that are queued while the completions of one batch
//     are processed and submitted together with the next wait: one system
//     call per batch, none per request.
// It is not an example and not robust: no graceful drain on shutdown (the
// benchmark stops it only once its load is done), no fd-exhaustion handling.
//
// Needs Linux 6.1 (DEFER_TASKRUN, multi-shot receive with a buffer ring,
// sparse fixed-file tables); exits with status 2 and a message where the
// kernel refuses any of them.
//
// Design note
//
// Each worker thread owns its ring, its listening socket and its connection
// table (indexed by fixed-file slot); nothing is shared between workers. A
// connection has at most one send in flight, so its bytes leave in order;
// what arrives meanwhile is appended to its output buffer and sent when that
// send completes. SIGINT/SIGTERM are blocked in every thread; main() waits
// for them (WaitForStopSignal()) and then writes each worker's eventfd,
// which the worker watches with a multi-shot poll.

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "examples/server_process.h"

ABSL_FLAG(std::string, bind, "127.0.0.1", "IPv4 address to listen on");
ABSL_FLAG(int, port, 7002, "TCP port; 0 picks a free one");
ABSL_FLAG(std::string, port_file, "", "write the port listened on to this file");
ABSL_FLAG(int, threads, 1, "worker threads (one ring each)");

namespace {

constexpr unsigned kRingEntries = 4096;
constexpr unsigned kFixedFiles = 16384;   // connections per worker
constexpr unsigned kBuffers = 1024;       // provided receive buffers per worker
constexpr unsigned kBufferBytes = 4096;
constexpr size_t kMaxPending = 1 << 20;   // unsent bytes before we give up

enum Op : uint64_t { kAccept = 1, kRecv, kSend, kClose, kStop };

uint64_t Tag(Op op, unsigned slot) { return (uint64_t{slot} << 8) | op; }

[[noreturn]] void Fail(const char* what, int err) {
  std::fprintf(stderr, "echo_server_uring_floor: %s: %s\n", what,
               std::strerror(err));
  std::exit(2);
}

struct Conn {
  std::vector<char> out;   // received, not yet sent
  size_t in_flight = 0;    // bytes of `out` handed to the send in flight
  bool recv_armed = false;
  bool closing = false;
};

class Worker {
 public:
  Worker(const sockaddr_in& addr, int* port) : conns_(kFixedFiles) {
    listen_fd_ = Listen(addr, port);
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) Fail("eventfd", errno);
  }

  ~Worker() {
    if (ring_ready_) io_uring_queue_exit(&ring_);
    close(listen_fd_);
    close(stop_fd_);
  }

  // On the worker's own thread (a SINGLE_ISSUER ring belongs to the thread
  // that creates it), before Run().
  void SetUpRing() {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init_params(kRingEntries, &ring_, &p);
    if (rc < 0) Fail("io_uring_queue_init_params(DEFER_TASKRUN)", -rc);
    ring_ready_ = true;
    rc = io_uring_register_files_sparse(&ring_, kFixedFiles);
    if (rc < 0) Fail("io_uring_register_files_sparse", -rc);
    SetUpBuffers();
  }

  // Thread-safe: wakes Run() and makes it return.
  void Stop() {
    uint64_t one = 1;
    ssize_t ignored = write(stop_fd_, &one, sizeof(one));
    (void)ignored;
  }

  // Runs on the worker's own thread until Stop().
  void Run() {
    ArmAccept();
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_poll_multishot(sqe, stop_fd_, POLLIN);
    io_uring_sqe_set_data64(sqe, Tag(kStop, 0));
    while (!stopping_) {
      io_uring_cqe* cqe;
      int rc = io_uring_submit_and_wait(&ring_, 1);
      if (rc < 0 && rc != -EINTR) Fail("io_uring_submit_and_wait", -rc);
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        Complete(cqe);
      }
      io_uring_cq_advance(&ring_, seen);
      if (returned_ > 0) {
        io_uring_buf_ring_advance(buf_ring_, returned_);
        returned_ = 0;
      }
    }
  }

 private:
  void SetUpBuffers() {
    void* mem = nullptr;
    if (posix_memalign(&mem, 4096, kBuffers * sizeof(io_uring_buf)) != 0) {
      Fail("posix_memalign", ENOMEM);
    }
    buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
    ring_mem_.reset(static_cast<char*>(mem));
    io_uring_buf_ring_init(buf_ring_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uintptr_t>(buf_ring_);
    reg.ring_entries = kBuffers;
    reg.bgid = 0;
    int rc = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (rc < 0) Fail("io_uring_register_buf_ring", -rc);
    buffers_.reset(new char[size_t{kBuffers} * kBufferBytes]);
    for (unsigned i = 0; i < kBuffers; ++i) ReturnBuffer(i);
    io_uring_buf_ring_advance(buf_ring_, returned_);
    returned_ = 0;
  }

  static int Listen(const sockaddr_in& addr, int* port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) Fail("socket", errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    // Accepted sockets inherit TCP_NODELAY; a fixed-file socket has no fd
    // to set it on.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in a = addr;
    a.sin_port = htons(static_cast<uint16_t>(*port));
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0) {
      Fail("bind", errno);
    }
    if (listen(fd, 4096) < 0) Fail("listen", errno);
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    *port = ntohs(a.sin_port);
    return fd;
  }

  io_uring_sqe* Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {  // the submission queue is full: flush it
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void ReturnBuffer(unsigned id) {
    io_uring_buf_ring_add(buf_ring_, buffers_.get() + size_t{id} * kBufferBytes,
                          kBufferBytes, static_cast<unsigned short>(id),
                          io_uring_buf_ring_mask(kBuffers), returned_++);
  }

  void ArmAccept() {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_multishot_accept_direct(sqe, listen_fd_, nullptr, nullptr, 0);
    io_uring_sqe_set_data64(sqe, Tag(kAccept, 0));
  }

  void ArmRecv(unsigned slot) {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_recv_multishot(sqe, static_cast<int>(slot), nullptr, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    io_uring_sqe_set_data64(sqe, Tag(kRecv, slot));
    conns_[slot].recv_armed = true;
  }

  void Flush(unsigned slot) {
    Conn& c = conns_[slot];
    if (c.in_flight > 0 || c.out.empty()) return;
    c.in_flight = c.out.size();
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_send(sqe, static_cast<int>(slot), c.out.data(), c.in_flight,
                       MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, Tag(kSend, slot));
  }

  // Closes once neither a receive nor a send refers to the slot.
  void MaybeClose(unsigned slot) {
    Conn& c = conns_[slot];
    if (!c.closing || c.recv_armed || c.in_flight > 0) return;
    c = Conn{};
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_close_direct(sqe, slot);
    io_uring_sqe_set_data64(sqe, Tag(kClose, slot));
  }

  void Complete(const io_uring_cqe* cqe) {
    const Op op = static_cast<Op>(cqe->user_data & 0xff);
    const unsigned slot = static_cast<unsigned>(cqe->user_data >> 8);
    const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    switch (op) {
      case kAccept:
        if (cqe->res >= 0 && static_cast<unsigned>(cqe->res) < kFixedFiles) {
          conns_[cqe->res] = Conn{};
          ArmRecv(static_cast<unsigned>(cqe->res));
        } else if (cqe->res != -ENFILE) {
          std::fprintf(stderr, "echo_server_uring_floor: accept: %s\n",
                       std::strerror(-cqe->res));
        }
        if (!more && !stopping_) ArmAccept();
        return;
      case kRecv:
        OnRecv(slot, cqe, more);
        return;
      case kSend: {
        Conn& c = conns_[slot];
        const size_t sent = cqe->res > 0 ? static_cast<size_t>(cqe->res) : 0;
        c.out.erase(c.out.begin(), c.out.begin() + static_cast<long>(sent));
        c.in_flight = 0;
        if (cqe->res < 0) {
          c.closing = true;
          c.out.clear();
        }
        Flush(slot);
        MaybeClose(slot);
        return;
      }
      case kStop:
        stopping_ = true;
        return;
      case kClose:
        return;
    }
  }

  void OnRecv(unsigned slot, const io_uring_cqe* cqe, bool more) {
    Conn& c = conns_[slot];
    if (!more) c.recv_armed = false;
    if (cqe->res > 0) {
      const unsigned id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
      const char* data = buffers_.get() + size_t{id} * kBufferBytes;
      if (!c.closing) c.out.insert(c.out.end(), data, data + cqe->res);
      ReturnBuffer(id);
      if (c.out.size() > kMaxPending) {  // the peer does not read
        c.closing = true;
        c.out.clear();
      }
      Flush(slot);
      if (!more && !c.closing) ArmRecv(slot);
    } else if (cqe->res == -ENOBUFS) {
      if (!c.closing) ArmRecv(slot);  // buffers come back after this batch
    } else {
      c.closing = true;  // end of file or error
    }
    MaybeClose(slot);
  }

  io_uring ring_{};
  io_uring_buf_ring* buf_ring_ = nullptr;
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, FreeDeleter> ring_mem_;
  std::unique_ptr<char[]> buffers_;
  int returned_ = 0;  // buffers given back since the last advance
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  bool ring_ready_ = false;
  bool stopping_ = false;
  std::vector<Conn> conns_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // Inherited by the workers: only main() takes SIGINT/SIGTERM.
  const sigset_t stop_signals = aioco::echo::BlockStopSignals();

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (inet_pton(AF_INET, absl::GetFlag(FLAGS_bind).c_str(), &addr.sin_addr) !=
      1) {
    std::fprintf(stderr, "echo_server_uring_floor: bad --bind\n");
    return 2;
  }
  int port = absl::GetFlag(FLAGS_port);
  const int threads = std::max(1, absl::GetFlag(FLAGS_threads));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < threads; ++i) {
    // The first worker picks the port (if 0); the others share it.
    workers.push_back(std::make_unique<Worker>(addr, &port));
  }
  std::vector<std::thread> running;
  std::latch ready(threads);
  for (auto& w : workers) {
    running.emplace_back([&w, &ready] {
      w->SetUpRing();
      ready.count_down();
      w->Run();
    });
  }
  ready.wait();  // publish the port only once every ring is up
  aioco::echo::WritePortFile(absl::GetFlag(FLAGS_port_file), port);
  aioco::echo::WaitForStopSignal(stop_signals);
  for (auto& w : workers) w->Stop();
  for (std::thread& t : running) t.join();
  return 0;
}
