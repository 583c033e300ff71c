#!/usr/bin/env python3
"""Runs aioco's benchmark binaries and prints a side-by-side report.

Usage:
  report.py [--results DIR] [--repetitions N] [--extra FILE[=LABEL]] ... BINARY...

Each BINARY is a Google Benchmark program (built with `bazel build
--config=opt`). It is run with

  --benchmark_repetitions=N --benchmark_report_aggregates_only=true
  --benchmark_out=<DIR>/<suite>.json --benchmark_out_format=json

(its console output is read live for progress), where <suite> is the binary's
file name without a trailing "_benchmark". A missing or failing binary is
reported and skipped; the others still run.

Benchmark names follow "<suite>/<metric>/<impl>[/args...]". impl "aioco" is
ours; any other impl in the same binary is a baseline. Every baseline is paired
with the "aioco" entry of the same <suite>/<metric> and the same arguments
(Google Benchmark's decorations such as "real_time", "min_time:..." or
"repeats:..." are ignored for pairing; "threads:N" is kept). The ratio is
aioco time / baseline time on the medians: below 1 means aioco is faster.
The time compared is the wall-clock ("real") time when either side of a pair
measures real or manual time, otherwise CPU time.

Outputs, all under --results (default bench/results):
  <suite>.json   Google Benchmark's JSON, as written by the binary
  <suite>.log    the binary's console output and stderr
  <suite>.svg    grouped bars per metric, aioco vs baselines (needs gnuplot)
  report.md      the machine description and the tables
  summary.json   the paired rows, machine readable

--extra FILE merges a Google Benchmark JSON produced elsewhere (for example a
1..16 thread scaling run on a bigger machine) into the report as its own
section, with that machine's description taken from the JSON's context.
Benchmarks whose arguments include "threads:N" (also "cores:N",
"connections:N") additionally get a scaling table.

Python 3 standard library only; plots use /usr/bin/gnuplot when present.
"""

import argparse
import json
import os
import pty
import re
import select
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report_machine import allocator_summary, describe_context, describe_machine  # noqa: E402

AIOCO = "aioco"

# Name components Google Benchmark appends that do not identify the workload.
_DECORATION_RE = re.compile(
    r"^(real_time|manual_time|process_time|min_time:.*|min_warmup_time:.*|"
    r"iterations:.*|repeats:.*)$")
_REAL_TIME_DECORATIONS = ("real_time", "manual_time")
_SCALING_KEYS = ("threads", "cores", "connections")
_TIME_UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


# -----------------------------------------------------------------------------
# Parsing Google Benchmark JSON
# -----------------------------------------------------------------------------
class Result:
    """One benchmark's median (real and CPU time in ns, throughput)."""

    def __init__(self, run_name, real_ns, cpu_ns, items_per_second=None,
                 bytes_per_second=None, cv=None, error=None, source=""):
        self.run_name = run_name
        parts = run_name.split("/")
        self.conventional = len(parts) >= 3
        self.suite = parts[0]
        self.metric = parts[1] if len(parts) > 1 else ""
        self.impl = parts[2] if len(parts) > 2 else ""
        rest = parts[3:] if len(parts) > 3 else []
        self.decorations = [p for p in rest if _DECORATION_RE.match(p)]
        self.args = tuple(p for p in rest if not _DECORATION_RE.match(p))
        self.real_ns = real_ns
        self.cpu_ns = cpu_ns
        self.items_per_second = items_per_second
        self.bytes_per_second = bytes_per_second
        self.cv = cv
        self.error = error
        self.source = source

    @property
    def uses_real_time(self):
        return any(d in _REAL_TIME_DECORATIONS for d in self.decorations)

    @property
    def key(self):
        """Pairing key: <suite>/<metric> plus the workload arguments."""
        return (self.suite, self.metric) + self.args

    @property
    def label(self):
        return "/".join((self.suite, self.metric) + self.args)

    def time_ns(self, real):
        return self.real_ns if real else self.cpu_ns


def _to_ns(entry, field):
    value = entry.get(field)
    if value is None:
        return None
    return float(value) * _TIME_UNIT_NS.get(entry.get("time_unit", "ns"), 1.0)


def parse_benchmark_json(doc, source=""):
    """Returns (context dict, [Result]) from a Google Benchmark JSON document.

    Uses the "median" aggregate when present; with no aggregates (one
    repetition, or aggregates not requested) takes the median of the
    iteration entries of each run name.
    """
    context = dict(doc.get("context", {}))
    medians = {}
    cvs = {}
    iterations = {}
    errors = {}
    order = []
    for entry in doc.get("benchmarks", []):
        run_name = entry.get("run_name") or entry.get("name", "")
        if run_name not in order:
            order.append(run_name)
        if entry.get("error_occurred"):
            errors[run_name] = entry.get("error_message", "error")
            continue
        run_type = entry.get("run_type", "iteration")
        if run_type == "aggregate":
            agg = entry.get("aggregate_name")
            if agg == "median":
                medians[run_name] = entry
            elif agg == "cv":
                # The coefficient of variation is reported as a fraction in
                # the time fields.
                cvs[run_name] = entry.get("real_time")
        else:
            iterations.setdefault(run_name, []).append(entry)
    results = []
    for run_name in order:
        if run_name in errors and run_name not in medians:
            results.append(Result(run_name, None, None, error=errors[run_name],
                                  source=source))
            continue
        if run_name in medians:
            e = medians[run_name]
            results.append(Result(
                run_name, _to_ns(e, "real_time"), _to_ns(e, "cpu_time"),
                e.get("items_per_second"), e.get("bytes_per_second"),
                cvs.get(run_name), source=source))
        elif run_name in iterations:
            entries = iterations[run_name]

            def med(values):
                values = [v for v in values if v is not None]
                return statistics.median(values) if values else None

            cv = None
            reals = [_to_ns(e, "real_time") for e in entries]
            if len(reals) > 1 and statistics.mean(reals) > 0:
                cv = statistics.stdev(reals) / statistics.mean(reals)
            results.append(Result(
                run_name, med(reals), med([_to_ns(e, "cpu_time") for e in entries]),
                med([e.get("items_per_second") for e in entries]),
                med([e.get("bytes_per_second") for e in entries]),
                cv, source=source))
    return context, results


# -----------------------------------------------------------------------------
# Pairing
# -----------------------------------------------------------------------------
class Row:
    """aioco vs one baseline for one <suite>/<metric>[/args]."""

    def __init__(self, aioco, baseline):
        self.aioco = aioco
        self.baseline = baseline
        both = [r for r in (aioco, baseline) if r is not None]
        self.real = any(r.uses_real_time for r in both)
        self.label = both[0].label

    @property
    def ratio(self):
        if self.aioco is None or self.baseline is None:
            return None
        a = self.aioco.time_ns(self.real)
        b = self.baseline.time_ns(self.real)
        if a is None or b is None or b <= 0:
            return None
        return a / b

    def to_dict(self):
        def side(r):
            if r is None:
                return None
            return {
                "name": r.run_name,
                "impl": r.impl,
                "time_ns": r.time_ns(self.real),
                "real_ns": r.real_ns,
                "cpu_ns": r.cpu_ns,
                "items_per_second": r.items_per_second,
                "cv": r.cv,
                "error": r.error,
            }
        return {
            "benchmark": self.label,
            "time": "real" if self.real else "cpu",
            "aioco": side(self.aioco),
            "baseline": side(self.baseline),
            "ratio": self.ratio,
        }


def pair_results(results):
    """Returns (rows, unconventional) for one suite's results.

    Each baseline gets a row with the aioco result of the same key (or none);
    an aioco result without any baseline gets a row of its own. Results whose
    names do not follow the convention are returned separately.
    """
    by_key = {}
    keys = []
    unconventional = []
    for r in results:
        if not r.conventional:
            unconventional.append(r)
            continue
        if r.key not in by_key:
            by_key[r.key] = []
            keys.append(r.key)
        by_key[r.key].append(r)
    rows = []
    for key in keys:
        group = by_key[key]
        ours = [r for r in group if r.impl == AIOCO]
        baselines = [r for r in group if r.impl != AIOCO]
        aioco = ours[0] if ours else None
        if baselines:
            rows.extend(Row(aioco, b) for b in baselines)
        else:
            rows.append(Row(aioco, None))
    return rows, unconventional


# -----------------------------------------------------------------------------
# Formatting
# -----------------------------------------------------------------------------
def fmt_time(ns):
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return "%.3g %s" % (ns / scale, unit)
    return "%.3g ns" % ns


def fmt_rate(v):
    if v is None:
        return "-"
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return "%.3g%s/s" % (v / scale, suffix)
    return "%.3g/s" % v


def fmt_ratio(r):
    return "-" if r is None else "%.2f" % r


def fmt_side_time(r, real):
    if r is None:
        return "-"
    if r.error:
        return "error"
    text = fmt_time(r.time_ns(real))
    if r.cv is not None:
        text += " ±%.0f%%" % (100.0 * r.cv)
    return text


TABLE_HEADER = ("benchmark", "aioco", "baseline", "baseline time", "ratio",
                "aioco items/s", "baseline items/s")


def row_cells(row):
    return (
        row.label,
        fmt_side_time(row.aioco, row.real),
        row.baseline.impl if row.baseline else "-",
        fmt_side_time(row.baseline, row.real),
        fmt_ratio(row.ratio),
        fmt_rate(row.aioco.items_per_second if row.aioco else None),
        fmt_rate(row.baseline.items_per_second if row.baseline else None),
    )


def text_table(header, rows):
    widths = [len(h) for h in header]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    return "\n".join(lines)


def markdown_table(header, rows):
    esc = lambda c: c.replace("|", "\\|")
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(esc(c) for c in r) + " |")
    return "\n".join(lines)


# -----------------------------------------------------------------------------
# Scaling tables
# -----------------------------------------------------------------------------
def scaling_tables(results):
    """Tables of throughput against a "threads:N"-style argument.

    Returns [(title, header, rows)]. One table per scaling argument name; one
    row per <suite>/<metric>/<impl> (plus other arguments); cells are
    items/s where reported, else 1/time, with the speed-up over the smallest N.
    """
    series = {}
    for r in results:
        if not r.conventional or r.error:
            continue
        for i, arg in enumerate(r.args):
            name, _, value = arg.partition(":")
            if name in _SCALING_KEYS and value.isdigit():
                other = r.args[:i] + r.args[i + 1:]
                rowkey = "/".join((r.suite, r.metric, r.impl) + other)
                series.setdefault(name, {}).setdefault(rowkey, {})[int(value)] = r
    tables = []
    for name in sorted(series):
        rows_by_key = series[name]
        ns = sorted({n for cells in rows_by_key.values() for n in cells})
        if len(ns) < 2:
            continue
        header = ("benchmark",) + tuple("%s=%d" % (name, n) for n in ns) + (
            "speed-up %d->%d" % (ns[0], ns[-1]),)
        rows = []
        for rowkey in sorted(rows_by_key):
            cells = rows_by_key[rowkey]

            def throughput(r):
                if r.items_per_second:
                    return r.items_per_second
                t = r.time_ns(r.uses_real_time)
                return 1e9 / t if t else None

            values = {n: throughput(r) for n, r in cells.items()}
            row = [rowkey]
            for n in ns:
                row.append(fmt_rate(values.get(n)))
            first, last = values.get(ns[0]), values.get(ns[-1])
            row.append("%.2fx" % (last / first) if first and last else "-")
            rows.append(tuple(row))
        tables.append(("Scaling with %s" % name, header, rows))
    return tables


# -----------------------------------------------------------------------------
# Running the binaries
# -----------------------------------------------------------------------------
def suite_name(binary):
    base = os.path.basename(binary)
    for suffix in ("_benchmark", "_bench"):
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return base


class Progress:
    """Progress line on stderr: a live line on a terminal, periodic otherwise."""

    def __init__(self, stream=sys.stderr, interval=15.0):
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = interval
        self.last = 0.0
        self.width = 0

    def update(self, text, force=False):
        now = time.monotonic()
        if self.tty:
            pad = max(0, self.width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.width = len(text)
            self.stream.flush()
        elif force or now - self.last >= self.interval:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.last = now

    def done(self, text):
        if self.tty:
            self.update(text)
            self.stream.write("\n")
            self.width = 0
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def list_benchmarks(binary, extra_args):
    try:
        out = subprocess.run([binary, "--benchmark_list_tests=true"] + extra_args,
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [l for l in out.stdout.splitlines() if l.strip()]


def run_suite(binary, index, total, args, progress):
    """Runs one benchmark binary. Returns (status, json_path or None)."""
    suite = suite_name(binary)
    tag = "[%d/%d] %s" % (index, total, suite)
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        progress.done("%s: MISSING (%s not built?), skipped" % (tag, binary))
        return "missing", None
    extra = []
    if args.filter:
        extra.append("--benchmark_filter=" + args.filter)
    if args.min_time:
        extra.append("--benchmark_min_time=" + args.min_time)
    names = list_benchmarks(binary, extra)
    expected = len(names) if names else None
    out_json = os.path.join(args.results, suite + ".json")
    log_path = os.path.join(args.results, suite + ".log")
    if os.path.exists(out_json):
        os.remove(out_json)
    cmd = [binary,
           "--benchmark_repetitions=%d" % args.repetitions,
           "--benchmark_report_aggregates_only=true",
           "--benchmark_format=console", "--benchmark_color=false",
           "--benchmark_out=" + out_json,
           "--benchmark_out_format=json"] + extra
    # The console output goes through a pseudo-terminal so the binary's stdio
    # is line-buffered and each finished benchmark shows up immediately.
    master, slave = pty.openpty()
    start = time.monotonic()
    done_count = 0
    current = ""
    with open(log_path, "wb") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave,
                                    stderr=slave, close_fds=True)
        except OSError as e:
            os.close(master)
            os.close(slave)
            progress.done("%s: FAILED to start: %s" % (tag, e))
            return "failed", None
        os.close(slave)
        pending = b""
        timed_out = False
        while True:
            elapsed = time.monotonic() - start
            if args.suite_timeout and elapsed > args.suite_timeout:
                proc.kill()
                timed_out = True
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal.
                    data = b""
                if not data:
                    break
                log.write(data)
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace").strip()
                    if text.endswith("_median") or (
                            " " in text and text.split()[0].endswith("_median")):
                        done_count += 1
                        current = text.split()[0][: -len("_median")]
            elif proc.poll() is not None:
                break
            count = "%d/%s benchmarks" % (done_count, expected if expected else "?")
            progress.update("%s  %s  %.0fs%s" % (
                tag, count, elapsed, ("  last: " + current) if current else ""))
        os.close(master)
        rc = proc.wait()
    elapsed = time.monotonic() - start
    have_json = os.path.exists(out_json) and os.path.getsize(out_json) > 0
    if timed_out:
        progress.done("%s: TIMED OUT after %.0fs (see %s)" % (tag, elapsed, log_path))
        return "timeout", out_json if have_json else None
    if rc != 0:
        progress.done("%s: FAILED (exit %d) after %.0fs, see %s" % (
            tag, rc, elapsed, log_path))
        return "failed", out_json if have_json else None
    progress.done("%s: done in %.0fs (%d benchmarks)" % (tag, elapsed, done_count))
    return "ok", out_json if have_json else None


# -----------------------------------------------------------------------------
# Plots
# -----------------------------------------------------------------------------
def _gp_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plot_suite(suite, rows, results_dir, gnuplot):
    """Grouped bars per <metric>[/args]: aioco and each baseline's time."""
    impls = [AIOCO]
    labels = []
    values = {}
    for row in rows:
        if row.label not in labels:
            labels.append(row.label)
        for r in (row.aioco, row.baseline):
            if r is None or r.error:
                continue
            if r.impl not in impls:
                impls.append(r.impl)
            values[(row.label, r.impl)] = r.time_ns(row.real)
    if not labels:
        return None
    data_path = os.path.join(results_dir, suite + ".plot.dat")
    svg_path = os.path.join(results_dir, suite + ".svg")
    with open(data_path, "w") as f:
        f.write("# label " + " ".join(impls) + "\n")
        for label in labels:
            short = label[len(suite) + 1:] if label.startswith(suite + "/") else label
            cells = [("%.6g" % values[(label, i)]) if values.get((label, i)) else "?"
                     for i in impls]
            f.write(_gp_quote(short) + " " + " ".join(cells) + "\n")
    width = min(1800, max(640, 45 * len(labels) * len(impls) + 200))
    script = [
        "set terminal svg size %d,480 dynamic noenhanced font 'sans,11'" % width,
        "set output %s" % _gp_quote(svg_path),
        "set title %s" % _gp_quote(
            "%s: median time per iteration (lower is better)" % suite),
        "set datafile missing '?'",
        "set style data histogram",
        "set style histogram clustered gap 1",
        "set style fill solid 0.8 border -1",
        "set boxwidth 0.9",
        "set logscale y",
        "set ylabel 'ns (log scale)'",
        "set yrange [*:*]",
        "set grid ytics",
        "set key outside right top",
        "set xtics rotate by -30",
        "set bmargin 8",
    ]
    plots = []
    for i, impl in enumerate(impls):
        src = _gp_quote(data_path) if i == 0 else "''"
        plots.append("%s using %d%s title %s" % (
            src, i + 2, ":xtic(1)" if i == 0 else "", _gp_quote(impl)))
    script.append("plot " + ", ".join(plots))
    try:
        out = subprocess.run([gnuplot], input="\n".join(script) + "\n",
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        os.remove(data_path)
        return "gnuplot failed: %s" % e
    os.remove(data_path)
    if out.returncode != 0 or not os.path.exists(svg_path):
        return "gnuplot failed: %s" % out.stderr.strip()[-300:]
    return svg_path


# -----------------------------------------------------------------------------
# Main
# -----------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run aioco benchmarks and print aioco vs baseline.")
    p.add_argument("binaries", nargs="*", help="benchmark binaries to run")
    p.add_argument("--results", default="bench/results",
                   help="output directory (default: bench/results)")
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--filter", default="",
                   help="passed on as --benchmark_filter")
    p.add_argument("--min_time", "--min-time", dest="min_time", default="",
                   help="passed on as --benchmark_min_time")
    p.add_argument("--suite_timeout", "--suite-timeout", dest="suite_timeout",
                   type=float, default=1800.0,
                   help="seconds before a suite is killed (0 = no limit)")
    p.add_argument("--extra", action="append", default=[],
                   metavar="FILE[=LABEL]",
                   help="merge a Google Benchmark JSON from elsewhere")
    p.add_argument("--no_run", "--no-run", dest="no_run", action="store_true",
                   help="do not run the binaries; report on <results>/<suite>.json")
    p.add_argument("--no_plots", "--no-plots", dest="no_plots", action="store_true")
    return p.parse_intermixed_args(argv)


def main(argv):
    args = parse_args(argv)
    os.makedirs(args.results, exist_ok=True)
    progress = Progress()
    machine = describe_machine()
    print("Machine:")
    for k, v in machine:
        print("  %-16s %s" % (k + ":", v))
    print(flush=True)

    statuses = []      # (suite, status)
    suites = []        # (suite, context, results)
    total = len(args.binaries)
    for i, binary in enumerate(args.binaries, 1):
        suite = suite_name(binary)
        if args.no_run:
            path = os.path.join(args.results, suite + ".json")
            status = "ok" if os.path.exists(path) else "missing"
            path = path if status == "ok" else None
        else:
            status, path = run_suite(binary, i, total, args, progress)
        statuses.append((suite, status, binary))
        if path:
            try:
                with open(path) as f:
                    context, results = parse_benchmark_json(json.load(f), suite)
                suites.append((suite, context, results))
            except (OSError, ValueError) as e:
                statuses[-1] = (suite, "unreadable JSON (%s)" % e, binary)

    extras = []
    for spec in args.extra:
        path, _, label = spec.partition("=")
        try:
            with open(path) as f:
                context, results = parse_benchmark_json(json.load(f), path)
        except (OSError, ValueError) as e:
            print("extra results %s: cannot read (%s), skipped" % (path, e),
                  file=sys.stderr)
            continue
        extras.append((label or os.path.basename(path), path, context, results))

    contexts = {s: c for s, c, _ in suites}
    allocator = allocator_summary(contexts)
    builds = sorted({c.get("aioco_build", "?") for c in contexts.values()})
    gnuplot = None if args.no_plots else shutil.which("gnuplot")

    md = ["# aioco benchmark report", "",
          "Ratio = aioco median time / baseline median time (below 1: aioco "
          "is faster). ± is the coefficient of variation over the "
          "repetitions. Time is wall-clock for multi-threaded benchmarks "
          "(real/manual time), CPU time otherwise.", "",
          "## Machine", ""]
    md += ["- **%s**: %s" % (k, v) for k, v in machine]
    md += ["- **allocator**: %s" % allocator,
           "- **build**: %s" % (", ".join(builds) if builds else "-"),
           "- **repetitions**: %d" % args.repetitions, ""]
    print("Allocator: %s" % allocator)
    print()

    summary = {"machine": dict(machine), "allocator": allocator, "suites": {},
               "extra": {}}
    all_local_results = []
    for suite, context, results in suites:
        rows, unconventional = pair_results(results)
        all_local_results.extend(results)
        cells = [row_cells(r) for r in rows]
        print("== %s ==" % suite)
        print(text_table(TABLE_HEADER, cells) if cells else "(no benchmarks)")
        md += ["## %s" % suite, ""]
        md.append(markdown_table(TABLE_HEADER, cells) if cells else "(no benchmarks)")
        if unconventional:
            names = ", ".join(r.run_name for r in unconventional)
            print("not following <suite>/<metric>/<impl>: %s" % names)
            md += ["", "Not following `<suite>/<metric>/<impl>`: %s" % names]
        if gnuplot and rows:
            svg = plot_suite(suite, rows, args.results, gnuplot)
            if svg and svg.endswith(".svg"):
                md += ["", "![%s](%s)" % (suite, os.path.basename(svg))]
            elif svg:
                print(svg, file=sys.stderr)
        print()
        md.append("")
        summary["suites"][suite] = [r.to_dict() for r in rows]

    for title, header, rows in scaling_tables(all_local_results):
        print("== %s ==" % title)
        print(text_table(header, rows))
        print()
        md += ["## %s" % title, "", markdown_table(header, rows), ""]

    for label, path, context, results in extras:
        rows, _ = pair_results(results)
        cells = [row_cells(r) for r in rows]
        print("== %s (from %s) ==" % (label, path))
        for k, v in describe_context(context):
            print("  %-20s %s" % (k + ":", v))
        print(text_table(TABLE_HEADER, cells) if cells else "(no benchmarks)")
        md += ["## %s" % label, "", "Results from `%s`, measured on:" % path, ""]
        md += ["- **%s**: %s" % (k, v) for k, v in describe_context(context)]
        md += ["", markdown_table(TABLE_HEADER, cells) if cells else "(no benchmarks)", ""]
        for title, header, srows in scaling_tables(results):
            print("-- %s --" % title)
            print(text_table(header, srows))
            md += ["### %s" % title, "", markdown_table(header, srows), ""]
        print()
        summary["extra"][label] = [r.to_dict() for r in rows]

    problems = [(s, st, b) for s, st, b in statuses if st != "ok"]
    if problems:
        md += ["## Suites not reported", ""]
        for s, st, b in problems:
            line = "%s: %s (%s)" % (s, st, b)
            print("not reported: " + line)
            md.append("- " + line)
        md.append("")
    if not gnuplot and not args.no_plots:
        print("gnuplot not found: no plots (apt-get install gnuplot-nox)",
              file=sys.stderr)

    summary["status"] = {s: st for s, st, _ in statuses}
    with open(os.path.join(args.results, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(args.results, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("Report written to %s" % os.path.join(args.results, "report.md"))
    ran = sum(1 for _, st, _ in statuses if st == "ok")
    if total and ran == 0 and not extras:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
