"""Tests tools/report.py on the output of a real benchmark binary.

tiny_benchmark is run by report.py itself (as `tools/run.sh report` does); the
test then recomputes every pairing and ratio from the JSON the binary wrote and
checks that report.py's summary, report.md and console table agree with it.
"""

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import unittest

from tests.testing.runfile import runfile

REPORT = runfile("tools/report.py")
TINY = runfile("tests/tools/tiny_benchmark")

spec = importlib.util.spec_from_file_location("report", REPORT)
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# The BUILD file passes the allocator the build configuration links
# (--config=jemalloc or not), so the test checks the matching expectation.
EXPECT_ALLOCATOR = "glibc"
for _arg in list(sys.argv[1:]):
    if _arg.startswith("--expect_allocator="):
        EXPECT_ALLOCATOR = _arg.split("=", 1)[1]
        sys.argv.remove(_arg)


def run_report(args, cwd):
    proc = subprocess.run([sys.executable, REPORT] + args, cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    return proc


class ReportOnRealBenchmark(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.results = os.path.join(cls.tmp, "results")
        cls.missing = os.path.join(cls.tmp, "absent_benchmark")
        cls.proc = run_report(
            ["--results", cls.results, "--repetitions", "3",
             "--min_time", "0.005", TINY, cls.missing], cls.tmp)
        if cls.proc.returncode != 0:
            raise AssertionError("report.py failed:\n%s\n%s" % (
                cls.proc.stdout, cls.proc.stderr))
        with open(os.path.join(cls.results, "tiny.json")) as f:
            cls.raw = json.load(f)
        with open(os.path.join(cls.results, "summary.json")) as f:
            cls.summary = json.load(f)
        with open(os.path.join(cls.results, "report.md")) as f:
            cls.md = f.read()

    def medians(self):
        """run_name -> median entry, straight from the binary's JSON."""
        out = {}
        for e in self.raw["benchmarks"]:
            if e.get("aggregate_name") == "median":
                out[e["run_name"]] = e
        return out

    def time_ns(self, entry, field):
        return entry[field] * UNIT_NS[entry["time_unit"]]

    def test_binary_ran_with_repetitions_and_aggregates(self):
        aggs = {e.get("aggregate_name") for e in self.raw["benchmarks"]}
        self.assertIn("median", aggs)
        self.assertNotIn(None, aggs)  # aggregates only: no iteration rows
        reps = {e["repetitions"] for e in self.raw["benchmarks"]}
        self.assertEqual(reps, {3})

    def test_pairs(self):
        rows = self.summary["suites"]["tiny"]
        pairs = sorted(
            (r["benchmark"],
             r["aioco"]["name"] if r["aioco"] else None,
             r["baseline"]["name"] if r["baseline"] else None) for r in rows)
        self.assertEqual(pairs, sorted([
            ("tiny/spin", "tiny/spin/aioco", "tiny/spin/slow"),
            ("tiny/spin", "tiny/spin/aioco", "tiny/spin/fast"),
            ("tiny/arg/16", "tiny/arg/aioco/16", "tiny/arg/base/16"),
            ("tiny/arg/64", "tiny/arg/aioco/64", "tiny/arg/base/64"),
            ("tiny/realtime", "tiny/realtime/aioco/real_time",
             "tiny/realtime/cpu_base"),
            ("tiny/lonely", "tiny/lonely/aioco", None),
            ("tiny/orphan", None, "tiny/orphan/other"),
            ("tiny/scale/threads:1", "tiny/scale/aioco/real_time/threads:1", None),
            ("tiny/scale/threads:2", "tiny/scale/aioco/real_time/threads:2", None),
        ]))

    def test_ratios_match_raw_medians(self):
        med = self.medians()
        checked = 0
        for r in self.summary["suites"]["tiny"]:
            if not (r["aioco"] and r["baseline"]):
                self.assertIsNone(r["ratio"])
                continue
            a, b = med[r["aioco"]["name"]], med[r["baseline"]["name"]]
            # Real time if either side measured real time, CPU time otherwise.
            real = "real_time" in r["aioco"]["name"] or "real_time" in r["baseline"]["name"]
            field = "real_time" if real else "cpu_time"
            self.assertEqual(r["time"], "real" if real else "cpu")
            expected = self.time_ns(a, field) / self.time_ns(b, field)
            self.assertAlmostEqual(r["ratio"], expected, delta=1e-9 * expected)
            checked += 1
        self.assertEqual(checked, 5)

    def test_ratio_direction_follows_work(self):
        # aioco does 100 steps, "slow" 400 and "fast" 25: the time ratios must
        # fall on the right side of 1 whatever the machine speed.
        by = {(r["benchmark"], r["baseline"]["impl"] if r["baseline"] else None): r
              for r in self.summary["suites"]["tiny"]}
        self.assertLess(by[("tiny/spin", "slow")]["ratio"], 1.0)
        self.assertGreater(by[("tiny/spin", "fast")]["ratio"], 1.0)
        self.assertLess(by[("tiny/arg/64", "base")]["ratio"], 1.0)

    def test_items_per_second_carried(self):
        med = self.medians()
        row = next(r for r in self.summary["suites"]["tiny"]
                   if r["baseline"] and r["baseline"]["impl"] == "slow")
        self.assertEqual(row["aioco"]["items_per_second"],
                         med["tiny/spin/aioco"]["items_per_second"])

    def test_console_and_markdown(self):
        out = self.proc.stdout
        for text in ("Machine:", "CPU:", "kernel:", "virtual machine:",
                     "== tiny ==", "tiny/spin", "slow", "Allocator: " + EXPECT_ALLOCATOR,
                     "unconventional_name", "not reported: absent"):
            self.assertIn(text, out)
        for text in ("## Machine", "**allocator**: " + EXPECT_ALLOCATOR, "## tiny",
                     "| tiny/arg/64 |", "## Scaling with threads",
                     "## Suites not reported", "absent: missing"):
            self.assertIn(text, self.md)
        ratio = next(r["ratio"] for r in self.summary["suites"]["tiny"]
                     if r["baseline"] and r["baseline"]["impl"] == "slow")
        self.assertIn("%.2f" % ratio, self.md)

    def test_missing_binary_reported_not_fatal(self):
        self.assertEqual(self.summary["status"]["tiny"], "ok")
        self.assertEqual(self.summary["status"]["absent"], "missing")
        self.assertIn("MISSING", self.proc.stderr)

    def test_progress_names_suite(self):
        self.assertIn("[1/2] tiny", self.proc.stderr)
        self.assertIn("done in", self.proc.stderr)

    def test_svg_written(self):
        if not report.shutil.which("gnuplot"):
            self.skipTest("gnuplot not installed")
        with open(os.path.join(self.results, "tiny.svg")) as f:
            svg = f.read()
        self.assertIn("<svg", svg)
        self.assertIn("slow", svg)

    def test_extra_results_and_scaling(self):
        extra_dir = os.path.join(self.tmp, "extra")
        proc = run_report(
            ["--results", extra_dir, "--extra",
             os.path.join(self.results, "tiny.json") + "=other machine"],
            self.tmp)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("== other machine", proc.stdout)
        self.assertIn("Scaling with threads", proc.stdout)
        with open(os.path.join(extra_dir, "summary.json")) as f:
            summary = json.load(f)
        self.assertEqual(
            sorted(r["benchmark"] for r in summary["extra"]["other machine"]),
            sorted(r["benchmark"] for r in self.summary["suites"]["tiny"]))
        with open(os.path.join(extra_dir, "report.md")) as f:
            md = f.read()
        # The extra section describes the machine the JSON came from.
        self.assertIn("**allocator**: " + EXPECT_ALLOCATOR, md)
        self.assertIn("speed-up 1->2", md)


class ParseIterationsWithoutAggregates(unittest.TestCase):

    def test_median_of_iteration_entries(self):
        tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        out = os.path.join(tmp, "iter.json")
        subprocess.run([TINY, "--benchmark_filter=tiny/spin/",
                        "--benchmark_repetitions=3",
                        "--benchmark_min_time=0.005",
                        "--benchmark_out=" + out, "--benchmark_out_format=json"],
                       check=True, capture_output=True, timeout=120)
        with open(out) as f:
            doc = json.load(f)
        # Keep only the iteration rows, as a run without aggregates has.
        doc["benchmarks"] = [e for e in doc["benchmarks"]
                             if e["run_type"] == "iteration"]
        ctx, results = report.parse_benchmark_json(doc)
        self.assertTrue(ctx["allocator"].startswith(EXPECT_ALLOCATOR))
        by = {r.run_name: r for r in results}
        self.assertEqual(sorted(by), ["tiny/spin/aioco", "tiny/spin/fast",
                                      "tiny/spin/slow"])
        cpu = [e["cpu_time"] * UNIT_NS[e["time_unit"]]
               for e in doc["benchmarks"] if e["run_name"] == "tiny/spin/aioco"]
        self.assertEqual(len(cpu), 3)
        self.assertAlmostEqual(by["tiny/spin/aioco"].cpu_ns, statistics.median(cpu))
        rows, _ = report.pair_results(results)
        self.assertEqual(len(rows), 2)


if __name__ == "__main__":
    unittest.main()
