// Design note
//
// Shutdown is driven by a signal taken synchronously: main() blocks
// SIGINT/SIGTERM before starting any thread and later waits for them with
// sigwait(), so no handler runs asynchronously and every other thread
// inherits the blocked mask. The port file is published with rename(), which
// is atomic within a file system: a reader polling for the file never reads
// a partial port number.

#include "examples/server_process.h"

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace aioco {
namespace echo {

sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return stop_signals;
}

int WaitForStopSignal(const sigset_t& stop_signals) {
  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  return sig;
}

void WritePortFile(const std::string& path, int port) {
  if (path.empty()) return;
  std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace echo
}  // namespace aioco
