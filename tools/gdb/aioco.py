"""gdb commands for aioco coroutines.

Load it in gdb with `source tools/gdb/aioco.py` (or -x on the command line),
in a live process built with debug information (-g: `bazel build -c dbg`, or
copts = ["-g"] on a target that uses aioco::Coroutine).

  aioco list [-a]      every coroutine: address, state, context, entry.
                       -a also lists finished coroutines waiting in a pool.
  aioco bt ADDR|#N     backtrace of one coroutine (N: index from `aioco list`)
  aioco bt-all         backtraces of every suspended coroutine

States:
  running      on a thread now (that thread's stack pointer is inside its
               stack); `aioco bt` shows that thread's backtrace
  entered      it entered another coroutine (nested Enter()) and waits for it
  scheduled    claimed by a scheduler and not yet resumed; the marker names
               who claimed it (e.g. "CoSchedule", "CoYieldUntilFd")
  yielded      suspended in Coroutine::Yield(); resumed only by whoever keeps
               its pointer (a CoQueue, a timer, user code)
  new          created and never entered
  free         finished; its stack waits in a pool for reuse (shown with -a)

How coroutines are found: each coroutine owns one mmap'd stack with the
Coroutine object at its top (coroutine/internal/stack.h), so the script reads
/proc/<pid>/maps and checks, at the top of every anonymous read-write mapping,
for a Coroutine whose Stack header describes that same mapping.

How a suspended coroutine is unwound: the x86-64 inline-asm switch (the
default there, coroutine/internal/inline_switch.h) stores the stack pointer,
frame pointer and resume address in the Coroutine itself (sp_, fp_, pc_); the
out-of-line switch (coroutine/internal/context_*.S: aarch64, sanitizer builds)
leaves the callee-saved registers and the return address at the saved stack
pointer. `aioco bt` loads those into the selected thread's registers, runs
`bt`, and restores the registers. That needs a live process (not a core file)
and an assembly backend; under --config=ucontext listing still works but the
saved context is in a glibc jmp_buf with mangled pointers, so no backtrace.
"""

import os
import re

import gdb

# Layout of the frame the context switch saves (context_asm_offsets.h).
_X86_64 = {
    "regs": {"r15": 8, "r14": 16, "r13": 24, "r12": 32, "rbx": 40, "rbp": 48},
    "pc": 56,       # return address
    "frame": 64,    # bytes popped by the switch, return address included
    "sp": "rsp",
    "pc_reg": "rip",
}
_AARCH64 = {
    "regs": {"x19": 0, "x20": 8, "x21": 16, "x22": 24, "x23": 32, "x24": 40,
             "x25": 48, "x26": 56, "x27": 64, "x28": 72, "x29": 80, "x30": 88},
    "pc": 88,       # lr: where the switch returns to
    "frame": 176,
    "sp": "sp",
    "pc_reg": "pc",
}


def _arch():
    name = gdb.selected_frame().architecture().name()
    if "x86-64" in name or "x86_64" in name:
        return _X86_64
    if "aarch64" in name:
        return _AARCH64
    return None


def _coroutine_type():
    try:
        return gdb.lookup_type("aioco::Coroutine")
    except gdb.error:
        raise gdb.GdbError(
            "aioco: no debug information for aioco::Coroutine; build with -g "
            "(bazel -c dbg, or copts = [\"-g\"] on a target using Coroutine)")


def _ptr_size():
    return gdb.lookup_type("void").pointer().sizeof


def _read_ptr(inferior, addr):
    size = _ptr_size()
    data = bytes(inferior.read_memory(addr, size))
    return int.from_bytes(data, "little")


def _symbol(addr):
    """Name of the function containing addr, or None."""
    if not addr:
        return None
    try:
        block = gdb.block_for_pc(addr)
        while block is not None and block.function is None:
            block = block.superblock
        if block is not None and block.function is not None:
            return block.function.print_name
    except RuntimeError:
        pass
    text = gdb.execute("info symbol 0x%x" % addr, to_string=True).strip()
    if text.startswith("No symbol"):
        return None
    return re.split(r" \+ \d+| in section ", text)[0]


def _mappings(inferior):
    """(start, end, perms, path) of every mapping of the live process."""
    maps = []
    try:
        with open("/proc/%d/maps" % inferior.pid) as f:
            for line in f:
                parts = line.split(None, 5)
                start, end = (int(x, 16) for x in parts[0].split("-"))
                path = parts[5].strip() if len(parts) > 5 else ""
                maps.append((start, end, parts[1], path))
    except OSError:
        raise gdb.GdbError("aioco: cannot read /proc/%d/maps (needs a live, "
                           "local process)" % inferior.pid)
    return maps


class _Co:
    pass


def _thread_stack_pointers(arch):
    """{global thread number: stack pointer} of every thread."""
    out = {}
    selected = gdb.selected_thread()
    frame = gdb.selected_frame()
    for thread in gdb.selected_inferior().threads():
        thread.switch()
        out[thread.global_num] = int(gdb.newest_frame().read_register(arch["sp"]))
    if selected is not None:
        selected.switch()
        try:
            frame.select()
        except gdb.error:
            pass
    return out


def find_coroutines(include_free=False):
    inferior = gdb.selected_inferior()
    if inferior.pid == 0:
        raise gdb.GdbError("aioco: the program is not running")
    co_type = _coroutine_type()
    co_size = co_type.sizeof
    arch = _arch()
    sps = _thread_stack_pointers(arch) if arch else {}
    psize = _ptr_size()
    found = []
    for start, end, perms, path in _mappings(inferior):
        if not perms.startswith("rw") or (path and not path.startswith("[anon")):
            continue
        if end - start < 4096 or end - start < co_size * 2:
            continue
        addr = (end - co_size) & ~63
        if addr < start:
            continue
        try:
            co = gdb.Value(addr).cast(co_type.pointer()).dereference()
            stack = int(co["stack_"])
            if not (start <= stack < addr):
                continue
            # Stack header: map_base, map_size, lo, top (stack.h).
            map_base = _read_ptr(inferior, stack)
            map_size = _read_ptr(inferior, stack + psize)
            lo = _read_ptr(inferior, stack + 2 * psize)
            top = _read_ptr(inferior, stack + 3 * psize)
        except (gdb.MemoryError, gdb.error):
            continue
        if map_base + map_size != end or not (map_base <= lo < top <= stack):
            continue
        c = _Co()
        c.addr = addr
        c.value = co
        c.lo, c.hi = lo, addr
        c.sp = int(co["sp_"])
        c.caller = int(co["caller_"])
        c.ctx = int(_atomic_ptr(co["ctx_"]))
        marker = _atomic_ptr(co["scheduled_"])
        c.marker = marker.string() if int(marker) else None
        c.entry = _symbol(int(co["entry_"]))
        c.thread = None
        for num, sp in sps.items():
            if lo <= sp < addr:
                c.thread = num
        # Inline-asm backend (x86-64 default): the switch stores the resume
        # address and rbp in the Coroutine itself (pc_, fp_). The out-of-line
        # .S backend leaves pc_ null and keeps a register frame at sp_.
        c.pc = int(co["pc_"]) if _has_field(co_type, "pc_") else 0
        c.fp = int(co["fp_"]) if _has_field(co_type, "fp_") else 0
        c.resume_at = None
        if c.pc:
            c.resume_at = c.pc
        elif arch and c.sp and lo <= c.sp < addr:
            try:
                c.resume_at = _read_ptr(inferior, c.sp + arch["pc"])
            except gdb.MemoryError:
                pass
        c.state = _state(c)
        if c.state == "free" and not include_free:
            continue
        found.append(c)
    found.sort(key=lambda c: c.addr)
    return found


def _has_field(struct_type, name):
    return any(f.name == name for f in struct_type.strip_typedefs().fields())


def _atomic_ptr(value):
    """The pointer inside a std::atomic<T*> (libstdc++ keeps it in _M_b._M_p)."""
    for path in (("_M_b", "_M_p"), ("_M_i",)):
        v = value
        try:
            for p in path:
                v = v[p]
            return v
        except gdb.error:
            continue
    return value.cast(gdb.lookup_type("char").pointer())


def _state(c):
    if c.thread is not None:
        return "running"
    if c.caller:
        return "entered"
    if c.marker:
        return "scheduled"
    where = _symbol(c.resume_at) if c.resume_at else None
    if where and "aioco_context_start" in where:
        return "new"
    if where and "CoroutineStart" in where:
        return "free"
    return "yielded"


def _describe(i, c):
    extra = []
    if c.state == "running":
        extra.append("thread %d" % c.thread)
    if c.marker:
        extra.append("by %s" % c.marker)
    if c.ctx:
        extra.append("ctx 0x%x" % c.ctx)
    return "#%-3d 0x%x  %-9s %-28s entry %s" % (
        i, c.addr, c.state, ", ".join(extra), c.entry or "?")


def _backtrace(c, limit):
    arch = _arch()
    if c.state == "running":
        for thread in gdb.selected_inferior().threads():
            if thread.global_num == c.thread:
                thread.switch()
                gdb.execute("bt %d" % limit if limit else "bt")
                return
    if arch is None or not c.sp or not (c.lo <= c.sp < c.hi):
        gdb.write("  (no saved assembly-switch frame: ucontext backend or "
                  "unsupported architecture)\n")
        return
    inferior = gdb.selected_inferior()
    if c.pc and arch is _X86_64:
        # Inline-asm switch: every other register was a clobber, so only the
        # stack pointer, frame pointer and resume address matter.
        new = {"rbp": c.fp, "rip": c.pc, "rsp": c.sp}
    else:
        new = {reg: _read_ptr(inferior, c.sp + off)
               for reg, off in arch["regs"].items()}
        new[arch["pc_reg"]] = _read_ptr(inferior, c.sp + arch["pc"])
        new[arch["sp"]] = c.sp + arch["frame"]
    gdb.execute("select-frame 0")
    saved = {reg: int(gdb.newest_frame().read_register(reg)) for reg in new}
    try:
        for reg, val in new.items():
            gdb.execute("set $%s = 0x%x" % (reg, val), to_string=True)
        gdb.execute("bt %d" % limit if limit else "bt")
    finally:
        # The program counter first: gdb refuses register writes while frame 0
        # is in aioco_context_start, whose unwind info marks rip undefined.
        gdb.execute("select-frame 0")
        order = [arch["pc_reg"], arch["sp"]] + [r for r in saved if r not in (
            arch["pc_reg"], arch["sp"])]
        for reg in order:
            gdb.execute("set $%s = 0x%x" % (reg, saved[reg]), to_string=True)


class AiocoPrefix(gdb.Command):
    """aioco coroutine commands: aioco list [-a], aioco bt ADDR|#N, aioco bt-all."""

    def __init__(self):
        super().__init__("aioco", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)


class AiocoList(gdb.Command):
    """List coroutines: aioco list [-a] (-a: include finished, pooled ones)."""

    def __init__(self):
        super().__init__("aioco list", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        cos = find_coroutines(include_free="-a" in arg.split())
        counts = {}
        for c in cos:
            counts[c.state] = counts.get(c.state, 0) + 1
        gdb.write("%d coroutines (%s)\n" % (
            len(cos), ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
        for i, c in enumerate(cos):
            gdb.write(_describe(i, c) + "\n")


def _pick(arg):
    arg = arg.strip()
    if not arg:
        raise gdb.GdbError("usage: aioco bt ADDR|#N [LIMIT]")
    parts = arg.split()
    limit = int(parts[1]) if len(parts) > 1 else 0
    cos = find_coroutines(include_free=True)
    if parts[0].startswith("#"):
        listed = [c for c in cos if c.state != "free"]
        n = int(parts[0][1:])
        if not 0 <= n < len(listed):
            raise gdb.GdbError("aioco: no coroutine #%d" % n)
        return listed[n], limit
    addr = int(gdb.parse_and_eval(parts[0]))
    for c in cos:
        if c.addr == addr:
            return c, limit
    raise gdb.GdbError("aioco: 0x%x is not a coroutine" % addr)


class AiocoBt(gdb.Command):
    """Backtrace of one coroutine: aioco bt ADDR|#N [LIMIT]."""

    def __init__(self):
        super().__init__("aioco bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        c, limit = _pick(arg)
        gdb.write("coroutine %s\n" % _describe(0, c)[5:])
        _backtrace(c, limit)


class AiocoBtAll(gdb.Command):
    """Backtraces of every suspended coroutine: aioco bt-all [LIMIT]."""

    def __init__(self):
        super().__init__("aioco bt-all", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        limit = int(arg) if arg.strip() else 0
        for i, c in enumerate(find_coroutines()):
            if c.state == "running":
                continue
            gdb.write("\n" + _describe(i, c) + "\n")
            _backtrace(c, limit)


AiocoPrefix()
AiocoList()
AiocoBt()
AiocoBtAll()
