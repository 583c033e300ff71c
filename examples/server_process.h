// -----------------------------------------------------------------------------
// File: examples/server_process.h
// -----------------------------------------------------------------------------
//
// The process-level steps the example echo servers (examples/echo_server.cc
// and its Boost.Asio baseline, examples/echo_server_asio.cc) share around
// their event loops: taking SIGINT/SIGTERM in main() only, and telling a
// script or test which port was bound.
//
// Thread safety: BlockStopSignals() changes the calling thread's signal mask
// and the process's SIGPIPE disposition: call it from main() before any
// other thread starts. WaitForStopSignal() and WritePortFile() are
// thread-safe.

#ifndef AIOCO_EXAMPLES_SERVER_PROCESS_H_
#define AIOCO_EXAMPLES_SERVER_PROCESS_H_

#include <signal.h>

#include <string>

namespace aioco {
namespace echo {

// Blocks SIGINT and SIGTERM in the calling thread (threads it starts later
// inherit the mask, so only WaitForStopSignal() takes them) and ignores
// SIGPIPE (a write to a closed connection returns EPIPE instead). Returns
// the blocked set, for WaitForStopSignal().
sigset_t BlockStopSignals();

// Waits until one of `stop_signals` is pending and returns it (sigwait(),
// retried if it fails).
int WaitForStopSignal(const sigset_t& stop_signals);

// If `path` is not empty, writes "<port>\n" to it. The file is written under
// a temporary name and renamed into place, so a reader that sees `path` sees
// all of it.
void WritePortFile(const std::string& path, int port);

}  // namespace echo
}  // namespace aioco

#endif  // AIOCO_EXAMPLES_SERVER_PROCESS_H_
