// -----------------------------------------------------------------------------
// File: co_socket.h
// -----------------------------------------------------------------------------
//
// CoSocket: coroutine I/O (connect, accept, receive, send, each wait
// optionally bounded) on one long-lived non-blocking socket (or pipe) whose
// fd handler stays registered between waits.
//
// CoRecv(), CoSend() and CoYieldUntilFdReadable() (co_io.h) set the fd's
// handlers when they wait and remove them afterwards: fd-monitor updates
// (epoll_ctl() calls, with epoll) on every wait. A connection that waits once
// per request pays them on every request. A CoSocket registers its read handler
// at its first wait and keeps it:
//   - a wait for readability costs no monitor update while the socket stays
//     registered;
//   - if the fd becomes readable while no coroutine waits (the coroutine is
//     busy elsewhere), the handler notes it and steps back (one update), so a
//     level-triggered monitor does not report the fd over and over;
//   - RecvSome() after a short read (the socket was drained) waits for the
//     handler before calling recv() again, instead of paying for a recv()
//     that fails with EAGAIN; a pipelining peer, whose data is already there
//     when the handler next runs, is read at once.
// The write handler is set only while a coroutine waits to write (a socket is
// writable nearly always, so a resident write handler would fire on every
// loop iteration).
//
// One coroutine may read while another writes (a proxy's two directions);
// at most one may wait to read, and one to write, at a time.
//
//   void Serve(int fd) {  // a coroutine of the fd's AioContext
//     CoSocket sock(fd);
//     char buf[4096];
//     for (;;) {
//       ssize_t n = sock.RecvSome(buf, sizeof(buf));
//       if (n <= 0) break;  // end of file or -errno
//       if (sock.Send(buf, n) != n) break;
//     }
//   }  // ~CoSocket() removes the handlers; then close(fd)
//
// Thread safety: home-thread-only. A CoSocket belongs to the AioContext that
//   is current where it is constructed; every member function runs in that
//   context's home thread, and the waiting ones (RecvSome, Recv, Send,
//   WaitReadable, WaitWritable) only in its coroutines. Misuse aborts with a
//   message naming the function.
// Ownership: the fd is the caller's. While a CoSocket is registered, the
//   fd's handlers in its AioContext are the CoSocket's: call Detach() before
//   using the fd with CoYieldUntilFd*(), CoSend()/CoRecv() or
//   SetFdHandler(), and destroy (or Detach()) the CoSocket before close().

#ifndef AIOCO_LOCKS_CO_SOCKET_H_
#define AIOCO_LOCKS_CO_SOCKET_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "timers/timer.h"

namespace aioco {

class AioContext;
class Coroutine;

class CoSocket {
 public:
  // Binds `fd` to the current thread's AioContext; registers nothing yet.
  // Aborts if the thread runs no AioContext.
  explicit CoSocket(int fd);

  // Removes the handlers if registered. Aborts if a coroutine still waits.
  ~CoSocket();

  CoSocket(const CoSocket&) = delete;
  CoSocket& operator=(const CoSocket&) = delete;

  int fd() const { return fd_; }

  // CoSocket::RecvSome()
  //
  // Receives at most `len` (> 0) bytes: whatever is readable, yielding while
  // nothing is. Returns the byte count, 0 at end of file, or -errno.
  ssize_t RecvSome(void* buf, size_t len);

  // CoSocket::TryRecvSome()
  //
  // As RecvSome(), but returns -EAGAIN instead of waiting.
  ssize_t TryRecvSome(void* buf, size_t len);

  // CoSocket::Recv()
  //
  // Receives exactly `len` bytes, yielding as needed (CoRecv()'s contract):
  // returns `len`, fewer at end of file or when an error follows some data,
  // or -errno when the error came before any byte.
  ssize_t Recv(void* buf, size_t len);

  // CoSocket::Send()
  //
  // Sends all `len` bytes, yielding while the socket is full (CoSend()'s
  // contract): returns `len`, fewer when an error follows some data, or
  // -errno (for example -EPIPE; never SIGPIPE) when nothing was sent.
  ssize_t Send(const void* buf, size_t len);

  // CoSocket::Connect()
  //
  // connect(2) for a non-blocking socket: starts the connection and, while
  // it is in progress, waits for writability (a send wait: bounded by the
  // write timeout), then reads the outcome (SO_ERROR). Returns 0, or -errno
  // (-ECONNREFUSED, -ETIMEDOUT, ...).
  int Connect(const struct sockaddr* addr, socklen_t addr_len);

  // CoSocket::Accept()
  //
  // accept4(2) on a listening socket, waiting for a connection (a receive
  // wait: bounded by the read timeout). `flags` as accept4's (SOCK_NONBLOCK,
  // SOCK_CLOEXEC); `addr`/`addr_len` may be null. Returns the new fd, or
  // -errno (-EMFILE, -ETIMEDOUT, ...).
  int Accept(struct sockaddr* addr, socklen_t* addr_len, int flags);

  // CoSocket::WaitReadable() / CoSocket::WaitWritable()
  //
  // Yield until the fd is readable / writable (or has an error or hang-up
  // condition); return 0, or -ETIMEDOUT (see SetTimeouts()). WaitReadable()
  // returns at once if the read handler saw the fd readable since the last
  // receive.
  int WaitReadable();
  int WaitWritable();

  // CoSocket::SetTimeouts()
  //
  // Bounds each wait of the receiving functions (RecvSome(), Recv(),
  // WaitReadable()) to `read_ns` and each wait of the sending ones (Send(),
  // WaitWritable()) to `write_ns` nanoseconds of the monotonic clock; 0, the
  // default, waits as long as it takes. A wait that times out makes its
  // function return -ETIMEDOUT (Recv() and Send(): the byte count instead,
  // if some bytes moved). Each wait gets the whole bound, as with
  // SO_RCVTIMEO: it limits silence, not the length of a transfer. A server
  // uses it to close idle connections and peers that stop reading. Costs a
  // timer arm and cancel per wait while set.
  void SetTimeouts(int64_t read_ns, int64_t write_ns);

  // CoSocket::waiting_to_read()
  //
  // True while a coroutine is suspended in RecvSome(), Recv() or
  // WaitReadable() (a server's shutdown uses it to find idle connections).
  bool waiting_to_read() const { return read_waiter_ != nullptr; }

  // CoSocket::Detach()
  //
  // Removes the fd's handlers now; the next wait registers them again.
  // Aborts if a coroutine waits.
  void Detach();

 private:
  static void OnReadable(void* opaque);
  static void OnWritable(void* opaque);
  void OnTimeout(bool write);
  int Wait(bool write, const char* function);
  void Update();  // registers what watch_read_ / write_waiter_ ask for
  static void Wake(Coroutine* co, const char* waker);

  AioContext* const ctx_;
  const int fd_;
  Coroutine* read_waiter_ = nullptr;
  Coroutine* write_waiter_ = nullptr;
  bool watch_read_ = false;    // the read handler should be registered
  bool read_set_ = false;      // registered: read handler
  bool write_set_ = false;     // registered: write handler
  bool readable_seen_ = false; // the read handler fired with nobody waiting
  bool drained_ = false;       // the last receive left the socket empty
  bool is_socket_ = true;      // false after ENOTSOCK: read()/write()
  int64_t read_timeout_ns_ = 0;
  int64_t write_timeout_ns_ = 0;
  bool read_timed_out_ = false;   // set by OnTimeout(), read by Wait()
  bool write_timed_out_ = false;
  std::unique_ptr<Timer> read_timer_;   // created at the first timed wait
  std::unique_ptr<Timer> write_timer_;
};

}  // namespace aioco

#endif  // AIOCO_LOCKS_CO_SOCKET_H_
