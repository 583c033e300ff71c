"""Bounded loopback soak test for examples/echo_server.

Starts the server on an ephemeral 127.0.0.1 port and checks, against the
running process: ping-pong and streaming load with every byte verified (by
echo_load), many idle connections, an oversized line, abrupt disconnects,
open-file exhaustion (EMFILE) while serving, a graceful SIGTERM under load
(no half-written or wrong responses, idle clients see a clean close, exit
status 0), and --idle_timeout closing silent connections only.
"""

import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

from tests.testing.runfile import runfile

SERVER = runfile("examples/echo_server")
LOAD = runfile("examples/echo_load")
# Sanitizer builds run several times slower; the BUILD file says which.
SLOW = "--slow" in sys.argv
if SLOW:
    sys.argv.remove("--slow")
SCALE = 4 if SLOW else 1
TMP = os.environ.get("TEST_TMPDIR", tempfile.gettempdir())


class Server:
    def __init__(self, *flags):
        self.dir = tempfile.mkdtemp(dir=TMP)
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "server.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [SERVER, "--port=0", "--port_file=" + self.port_file] + list(flags),
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20 * SCALE
        self.port = None
        while time.monotonic() < deadline:
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    self.port = int(f.read())
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if self.port is None:
            self.proc.kill()
            raise AssertionError("server did not start:\n" + self.text())

    def text(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def connect(self, timeout=10):
        return socket.create_connection(("127.0.0.1", self.port),
                                        timeout=timeout * SCALE)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout * SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not exit after %s:\n%s" % (sig, self.text()))
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_all(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def echo_load(port, *flags, timeout=120):
    return subprocess.run([LOAD, "--port=%d" % port] + list(flags),
                          capture_output=True, text=True, timeout=timeout * SCALE)


def fields(summary):
    out = {}
    for tok in summary.split():
        k, _, v = tok.partition("=")
        out[k] = v
    return out


class EchoSoakTest(unittest.TestCase):

    def setUp(self):
        self.server = Server("--threads=2", "--max_line=1024",
                             "--shutdown_timeout=10")

    def tearDown(self):
        self.server.kill()

    def assertServes(self, payload=b"still serving\n"):
        with self.server.connect() as s:
            s.sendall(payload)
            self.assertEqual(recv_exact(s, len(payload)), payload)

    def test_load_bad_input_and_graceful_shutdown(self):
        srv = self.server
        # Ping-pong with idle connections held open.
        r = echo_load(srv.port, "--connections=50", "--duration=1.5",
                      "--idle=300", "--threads=2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        f = fields(r.stdout)
        self.assertGreater(int(f["requests"]), 0)
        self.assertEqual(f["idle_open"], "300")
        # Streaming, pipelined.
        r = echo_load(srv.port, "--mode=stream", "--connections=4",
                      "--pipeline=32", "--duration=1", "--size=200")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # Partial lines are held until complete; several lines in one send.
        with srv.connect() as s:
            s.sendall(b"par")
            time.sleep(0.05)
            s.sendall(b"tial\nsecond\nthi")
            self.assertEqual(recv_exact(s, 15), b"partial\nsecond\n")
            s.sendall(b"rd\n")
            self.assertEqual(recv_exact(s, 6), b"third\n")

        # Oversized line: the good line before it is answered, then an error
        # line, then a clean close.
        with srv.connect() as s:
            s.sendall(b"fine\n" + b"x" * 3000)
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_all(s), b"fine\nERR line too long\n")
        # An oversized line that arrives complete, in one piece with the
        # lines around it: those before it are answered, those after not.
        with srv.connect() as s:
            s.sendall(b"one\ntwo\n" + b"y" * 2000 + b"\nthree\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_all(s), b"one\ntwo\nERR line too long\n")

        # Abrupt disconnects: reset with unread responses and mid-line.
        for _ in range(20):
            s = srv.connect()
            s.sendall(b"line\n" * 100 + b"half a li")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        self.assertServes()

        # Graceful shutdown under load: start load, then SIGTERM.
        load = subprocess.Popen(
            [LOAD, "--port=%d" % srv.port, "--connections=20", "--duration=30",
             "--tolerate_disconnects", "--threads=2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        idle = srv.connect()
        time.sleep(1.0 * SCALE)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        # The idle client is told (FIN, not a reset) and closes, as a client
        # should; the server waits for that before closing its end.
        idle.settimeout(5 * SCALE)
        self.assertEqual(idle.recv(10), b"")
        idle.close()
        rc = srv.stop()
        stop_s = time.monotonic() - t0
        out, err = load.communicate(timeout=60 * SCALE)
        log = srv.text()
        self.assertEqual(rc, 0, log)
        self.assertEqual(load.returncode, 0, out + err)
        f = fields(out)
        self.assertGreater(int(f["requests"]), 0, out)
        self.assertEqual(f["mismatches"], "0", out)
        self.assertEqual(f["half_written"], "0", out)
        self.assertEqual(f["disconnects"], "20", out)  # the server closed them all
        # The shutdown did not need the force-close step.
        self.assertNotIn("shutdown timeout", log)
        self.assertIn("shutdown complete", log)
        self.assertIn("line longer than 1024 bytes", log)
        self.assertIn("stopping", log)
        self.assertLess(stop_s, 10 * SCALE, log)
        # Nothing is accepted any more.
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()

    def test_fd_exhaustion_keeps_serving(self):
        self.assertEqual(self.server.stop(), 0)
        self.server.kill()
        srv = self.server = Server("--threads=1", "--fd_limit=48")
        held = []
        first = srv.connect()
        try:
            first.sendall(b"a\n")
            self.assertEqual(recv_exact(first, 2), b"a\n")
            for _ in range(80):
                s = srv.connect()
                s.settimeout(2 * SCALE)
                held.append(s)
            # Connections past the limit are accepted and closed at once.
            rejected = 0
            for s in held:
                try:
                    s.sendall(b"q\n")
                    got = recv_exact(s, 2)
                except OSError:
                    got = b""
                if got == b"":
                    rejected += 1
                else:
                    self.assertEqual(got, b"q\n")
            self.assertGreater(rejected, 0)
            self.assertLess(rejected, 80)
            # The connections that were accepted still work.
            first.sendall(b"b\n")
            self.assertEqual(recv_exact(first, 2), b"b\n")
            log = srv.text()
            self.assertIn("EMFILE", log)
            self.assertIn("still serving", log)
        finally:
            for s in held:
                s.close()
        # Once fds are free again, new connections are served.
        deadline = time.monotonic() + 10 * SCALE
        while True:
            try:
                self.assertServes(b"again\n")
                break
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        first.close()
        self.assertEqual(srv.stop(), 0, srv.text())

    def test_idle_timeout_closes_silent_connections(self):
        self.assertEqual(self.server.stop(), 0)
        self.server.kill()
        idle_s = 0.5 * SCALE
        srv = self.server = Server("--threads=1", "--idle_timeout=%g" % idle_s)
        quiet = srv.connect()
        quiet.sendall(b"hi\n")
        self.assertEqual(recv_exact(quiet, 3), b"hi\n")
        # Silent past the timeout: a clean close (FIN, not a reset).
        self.assertEqual(quiet.recv(10), b"")
        quiet.close()
        # A connection that keeps talking is never timed out.
        busy = srv.connect()
        for i in range(8):
            line = b"line %d\n" % i
            busy.sendall(line)
            self.assertEqual(recv_exact(busy, len(line)), line)
            time.sleep(idle_s / 10)
        busy.close()
        self.assertEqual(srv.stop(), 0, srv.text())
        log = srv.text()
        self.assertIn("idle for %.1fs; closing" % idle_s, log)
        self.assertRegex(log, r"idle_closed=1\b")


if __name__ == "__main__":
    unittest.main()
