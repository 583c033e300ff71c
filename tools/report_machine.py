"""Machine and allocator description for tools/report.py.

describe_machine() reads /proc, /sys and systemd-detect-virt (CPU model,
cores, NUMA nodes, memory, kernel, VM or container, load);
describe_context() reads the same facts from a Google Benchmark JSON
context (results merged from another machine with --extra);
allocator_summary() names the malloc the suites reported.

Python 3 standard library only.
"""

import os
import platform
import re
import shutil
import subprocess


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _detect_virt(flag):
    """systemd-detect-virt's answer: a name, "" for none, None if unknown."""
    detect = shutil.which("systemd-detect-virt")
    if not detect:
        return None
    try:
        out = subprocess.run([detect, flag], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    answer = out.stdout.strip()
    if answer == "none":
        return ""
    return answer or None


def describe_machine():
    """Facts about this machine, as an ordered list of (name, value)."""
    cpuinfo = _read("/proc/cpuinfo")
    model = ""
    cores = set()
    physical = None
    core_id = None
    hypervisor_flag = False
    for line in cpuinfo.splitlines() + [""]:
        k, _, v = line.partition(":")
        k, v = k.strip(), v.strip()
        if k == "model name" and not model:
            model = v
        elif k == "physical id":
            physical = v
        elif k == "core id":
            core_id = v
        elif k == "flags" and " hypervisor " in " %s " % v:
            hypervisor_flag = True
        elif not line.strip():
            if core_id is not None:
                cores.add((physical, core_id))
            physical = core_id = None
    logical = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = logical
    sockets = len({p for p, _ in cores}) or None
    numa = [d for d in os.listdir("/sys/devices/system/node")
            if re.match(r"^node\d+$", d)] if os.path.isdir(
                "/sys/devices/system/node") else []
    vm = _detect_virt("--vm")
    container = _detect_virt("--container")
    if vm:
        vm_text = "yes (%s)" % vm
    elif vm is None:
        vm_text = "yes (hypervisor CPU flag)" if hypervisor_flag else \
            "no (no hypervisor CPU flag)"
    else:
        vm_text = "no" + (" (but the CPU reports the hypervisor flag)"
                          if hypervisor_flag else "")
    mem = re.search(r"MemTotal:\s+(\d+) kB", _read("/proc/meminfo"))
    facts = [
        ("CPU", model or platform.processor() or "unknown"),
        ("cores", "%d logical (%d usable by this process), %s physical%s" % (
            logical, usable, len(cores) if cores else "?",
            ", %d socket(s)" % sockets if sockets else "")),
        ("NUMA nodes", str(len(numa)) if numa else "unknown"),
        ("memory", "%.1f GiB" % (int(mem.group(1)) / 1048576.0) if mem else "unknown"),
        ("kernel", " ".join(platform.uname()[i] for i in (0, 2, 4))),
        ("virtual machine", vm_text),
    ]
    if container:
        facts.append(("container", container))
    load = _read("/proc/loadavg").split()
    if len(load) >= 3:
        busy = logical and float(load[0]) > logical
        facts.append(("load average", " ".join(load[:3]) + (
            "  (busy: more runnable threads than CPUs; timings are noisy)"
            if busy else "")))
    return facts


def describe_context(context):
    """Facts from a Google Benchmark JSON context (for --extra results)."""
    facts = []
    for key, name in (("cpu_model", "CPU"), ("host_name", "host"),
                      ("num_cpus", "logical CPUs"), ("mhz_per_cpu", "MHz"),
                      ("kernel", "kernel"), ("hypervisor_flag", "hypervisor CPU flag"),
                      ("allocator", "allocator"), ("aioco_build", "build"),
                      ("date", "date")):
        if key in context:
            facts.append((name, str(context[key])))
    return facts


def allocator_summary(contexts):
    """One line naming the allocator(s) the suites reported."""
    seen = {}
    for suite, ctx in contexts.items():
        alloc = ctx.get("allocator")
        if alloc is None:
            alloc = "unknown (binary does not link //bench:bench_context)"
        seen.setdefault(alloc, []).append(suite)
    if not seen:
        return "unknown (no suite ran)"
    if len(seen) == 1:
        return next(iter(seen))
    return "; ".join("%s: %s" % (a, ", ".join(sorted(s))) for a, s in seen.items())
