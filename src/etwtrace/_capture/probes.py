"""The etwtrace USDT probes as perf tracepoints: SDT notes -> tracefs uprobe events.

`perf probe -x LIB sdt_etwtrace:*` would register our probes too, but it types every argument by
its size only (a `char *` becomes a u64, so mark texts and file names are lost), names them
arg1..argN, goes through (and fills) ~/.debug, and creates one global `sdt_etwtrace` group that
concurrent captures of different builds would fight over. So we read the probe notes of the
extension module ourselves and write the uprobe events into tracefs directly:

    p:etwtrace_<pid>/stack_sample /path/_etwtrace...so:0x11d0(0x3014) Mark=+0(%di):string

* one group per capture (`etwtrace_<launcher pid>`), removed when the capture ends; groups left
  behind by a launcher that died are removed by the next capture;
* the reference-counter offset `(0x...)` makes the kernel increment each probe's SDT semaphore
  while perf listens, which is what switches the probe sites on in the traced process;
* arguments carry upstream's field names and real types (strings for texts and file names).
"""

import os
import re
import select
import struct

from .._errors import ProbeError
from .._schema import PROBE_FIELDS, PROBE_GROUP_PREFIX

TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")



# x86-64 SDT operand registers -> pt_regs names used by tracefs fetch arguments.
_X86_REGS = {}
for _full, _name in (("rax", "ax"), ("rbx", "bx"), ("rcx", "cx"), ("rdx", "dx"),
                     ("rsi", "si"), ("rdi", "di"), ("rbp", "bp"), ("rsp", "sp")):
    _base = _full[1:]
    for _alias in (_full, "e" + _base, _base, _base[0] + "l" if _base.endswith("x") else _base + "l"):
        _X86_REGS[_alias] = _name
for _n in range(8, 16):
    for _suffix in ("", "d", "w", "b"):
        _X86_REGS[f"r{_n}{_suffix}"] = f"r{_n}"
_X86_REGS["rip"] = "ip"


class SdtNote:
    def __init__(self, provider, name, pc, base, semaphore, args):
        self.provider = provider
        self.name = name
        self.pc = pc
        self.base = base
        self.semaphore = semaphore
        self.args = args

    def __repr__(self):
        return f"SdtNote({self.provider}:{self.name} pc={self.pc:#x} sem={self.semaphore:#x} {self.args!r})"


def _read_elf(path):
    """(sections {name: (addr, offset, size)}, loads [(vaddr, offset, filesz)], notes bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ProbeError(f"{path} is not a 64-bit little-endian ELF file")
    (e_phoff, e_shoff) = struct.unpack_from("<QQ", data, 0x20)
    (e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHHHH", data, 0x36)
    loads = []
    for i in range(e_phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == 1:  # PT_LOAD
            loads.append((p_vaddr, p_offset, p_filesz))
    raw_sections = []
    for i in range(e_shnum):
        sh_name, _type, _flags, sh_addr, sh_offset, sh_size = struct.unpack_from(
            "<IIQQQQ", data, e_shoff + i * e_shentsize)
        raw_sections.append((sh_name, sh_addr, sh_offset, sh_size))
    strtab_off = raw_sections[e_shstrndx][2]
    sections = {}
    for sh_name, sh_addr, sh_offset, sh_size in raw_sections:
        end = data.index(b"\0", strtab_off + sh_name)
        sections[data[strtab_off + sh_name:end].decode()] = (sh_addr, sh_offset, sh_size)
    return data, sections, loads


def read_sdt_notes(path, provider="etwtrace"):
    """The SystemTap SDT notes of `provider` in the ELF file `path`."""
    data, sections, loads = _read_elf(path)
    if ".note.stapsdt" not in sections:
        return []
    _addr, offset, size = sections[".note.stapsdt"]
    notes = []
    pos, end = offset, offset + size
    while pos + 12 <= end:
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        pos += 12
        owner = data[pos:pos + namesz].rstrip(b"\0")
        pos += (namesz + 3) & ~3
        desc = data[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        if owner != b"stapsdt" or ntype != 3:
            continue
        pc, base, sem = struct.unpack_from("<QQQ", desc, 0)
        prov, name, args = desc[24:].split(b"\0")[:3]
        if prov.decode() != provider:
            continue
        notes.append(SdtNote(prov.decode(), name.decode(), pc, base, sem, args.decode()))
    # Prelink adjustment: the note records .stapsdt.base's address at link time.
    if ".stapsdt.base" in sections:
        actual = sections[".stapsdt.base"][0]
        for note in notes:
            note.pc += actual - note.base
            if note.semaphore:
                note.semaphore += actual - note.base
    for note in notes:
        note.pc_offset = _vaddr_to_offset(loads, note.pc)
        note.semaphore_offset = _vaddr_to_offset(loads, note.semaphore) if note.semaphore else 0
    return notes


def _vaddr_to_offset(loads, vaddr):
    for p_vaddr, p_offset, p_filesz in loads:
        if p_vaddr <= vaddr < p_vaddr + max(p_filesz, 1):
            return vaddr - p_vaddr + p_offset
    raise ProbeError(f"address {vaddr:#x} is outside every loadable segment")


_OPERAND = re.compile(r"^(-?\d+)@(.+)$")
_MEM = re.compile(r"^(-?\d*)\(%(\w+)\)$")


def _fetcharg(operand):
    """An SDT operand (`%rdi`, `-24(%rbp)`, `$1`) as a tracefs fetch argument, or None."""
    if operand.startswith("%"):
        reg = _X86_REGS.get(operand[1:])
        return f"%{reg}" if reg else None
    if operand.startswith("$"):
        try:
            return "\\" + str(int(operand[1:], 0))
        except ValueError:
            return None
    m = _MEM.match(operand)
    if m:
        reg = _X86_REGS.get(m.group(2))
        if reg is None or reg == "ip":
            return None
        off = int(m.group(1) or "0")
        return f"{'+' if off >= 0 else '-'}{abs(off)}(%{reg})"
    return None


def uprobe_definition(group, note, path, event=None):
    """The uprobe_events line for one SDT note (named `event`, default the probe's name), or
    None for a probe we do not know."""
    fields = PROBE_FIELDS.get(note.name)
    if fields is None:
        return None
    operands = note.args.split()
    args = []
    for (field, ftype), spec in zip(fields, operands):
        m = _OPERAND.match(spec)
        fetch = _fetcharg(m.group(2)) if m else None
        if fetch is None:
            continue  # An operand form we cannot express: the field is left out.
        if ftype == "string":
            if fetch.startswith("\\"):
                continue
            args.append(f"{field}=+0({fetch}):string")
        else:
            args.append(f"{field}={fetch}:{ftype}")
    place = f"{path}:{note.pc_offset:#x}"
    if note.semaphore_offset:
        place += f"({note.semaphore_offset:#x})"
    return f"p:{group}/{event or note.name} {place} {' '.join(args)}".rstrip()


def find_tracefs(mount=True):
    """The tracefs directory, mounting it when absent and permitted; None if unavailable.

    ETWTRACE_TRACEFS names the directory to use instead (never mounted); tests use it to
    simulate a machine without tracefs.
    """
    override = os.environ.get("ETWTRACE_TRACEFS")
    if override is not None:
        return override if os.path.exists(os.path.join(override, "uprobe_events")) else None
    for candidate in TRACEFS_CANDIDATES:
        if os.path.exists(os.path.join(candidate, "uprobe_events")):
            return candidate
    if mount and os.geteuid() == 0 and os.path.isdir(TRACEFS_CANDIDATES[0]):
        import subprocess

        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS_CANDIDATES[0]],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if os.path.exists(os.path.join(TRACEFS_CANDIDATES[0], "uprobe_events")):
            return TRACEFS_CANDIDATES[0]
    return None


def _write_uprobe_events(tracefs, lines):
    # os.write, not open(..., "a"): tracefs refuses the seek that append mode makes.
    fd = os.open(os.path.join(tracefs, "uprobe_events"), os.O_WRONLY | os.O_APPEND)
    try:
        for line in lines:
            os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _running(pid):
    """True if process `pid` exists and has not exited (a killed launcher not yet reaped has).

    A pidfd, not /proc: it names the process in our own pid namespace even where /proc was
    mounted from another one, and it becomes readable once the process has exited.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):
        return _running_by_proc(pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return not poller.poll(0)
    finally:
        os.close(fd)


def _running_by_proc(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def remove_stale_groups(tracefs):
    """Remove the events of etwtrace_<pid> groups whose launcher process is gone.

    Returns {group: errno} for the events the kernel kept: EBUSY while a perf session still
    has them open (the orphaned `perf record` of a killed launcher records until its target
    ends), so a capture calls this again when it finishes.
    """
    try:
        with open(os.path.join(tracefs, "uprobe_events")) as f:
            existing = f.read().splitlines()
    except OSError:
        return {}
    kept = {}
    for line in existing:
        m = re.match(r"^p:(" + PROBE_GROUP_PREFIX + r"(\d+))/(\w+) ", line)
        if not m or _running(int(m.group(2))):
            continue
        try:
            _write_uprobe_events(tracefs, [f"-:{m.group(1)}/{m.group(3)}"])
        except OSError as ex:
            kept[m.group(1)] = ex.errno
    return kept


class ProbeSet:
    """The uprobe events of one capture.

    Each probe has one site (one SDT note) in today's library. Should a build have several (as
    builds that inlined the probes did: one per call site), each site is its own uprobe event,
    named like perf probe does: `function`, `function_1`, ...; all share the probe's semaphore.
    """

    def __init__(self, tracefs, group, sites):
        self.tracefs = tracefs
        self.group = group
        self.sites = sites  # [(probe name, event name)]

    @property
    def names(self):
        return sorted({probe for probe, _ in self.sites})

    @property
    def events(self):
        """probe name -> [perf event names (group:event)]"""
        result = {}
        for probe, event in self.sites:
            result.setdefault(probe, []).append(f"{self.group}:{event}")
        return result

    def remove(self):
        for _probe, event in self.sites:
            try:
                _write_uprobe_events(self.tracefs, [f"-:{self.group}/{event}"])
            except OSError:
                pass
        self.sites = []


def register(library, tracefs, group=None, only=None):
    """Register every site of the etwtrace probes in `library` (those named in `only`, default
    all); returns a ProbeSet (maybe empty).

    A capture registers only the probes its profile records: an event nobody opens costs
    nothing, but it is one more line for every later tracefs writer to step over.
    """
    group = group or f"{PROBE_GROUP_PREFIX}{os.getpid()}"
    remove_stale_groups(tracefs)
    path = os.path.realpath(library)
    probes = ProbeSet(tracefs, group, [])
    counts = {}
    for note in read_sdt_notes(library):
        if only is not None and note.name not in only:
            continue
        n = counts.get(note.name, 0)
        event = note.name if n == 0 else f"{note.name}_{n}"
        line = uprobe_definition(group, note, path, event)
        if line is None:
            continue
        try:
            _write_uprobe_events(tracefs, [line])
        except OSError as ex:
            probes.remove()
            raise ProbeError(f"the kernel refused the uprobe '{line}' ({ex.strerror}); "
                             "check that tracefs is writable (run as root)") from None
        counts[note.name] = n + 1
        probes.sites.append((note.name, event))
    return probes


# perf_event_open(2) syscall numbers; elsewhere the hold below is skipped (captures are slower).
_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}
_PERF_TYPE_TRACEPOINT = 2
_PERF_FLAG_FD_CLOEXEC = 8


class TracepointHold:
    """Keeps the capture's tracepoints (its probe events, sched_switch) referenced while perf
    records, so that perf's exit is not where the kernel pays to take them down.

    The last perf event closed on a tracepoint makes the kernel wait for RCU grace periods
    (tracepoint_synchronize_unregister, and for a uprobe its removal): ~80 ms per event here,
    one event after the other, all inside perf's exit, before the capture can go on. Holding one
    disabled counting event per tracepoint on the launcher itself (it counts nothing: it is
    never enabled, and the launcher fires no probes) moves that cost to release(), which the
    supervisor runs in the background while perf inject and perf script work. Best effort: a
    tracepoint that cannot be held is only slower to close.
    """

    def __init__(self, tracefs, events):
        self.fds = []
        self._releasing = None
        nr = _PERF_EVENT_OPEN.get(os.uname().machine)
        if nr is None or not tracefs:
            return
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
        except (ImportError, OSError):
            return
        for event in events:
            group, _, name = event.partition(":")
            try:
                with open(os.path.join(tracefs, "events", group, name, "id")) as f:
                    tracepoint = int(f.read())
            except (OSError, ValueError):
                continue
            # struct perf_event_attr, PERF_ATTR_SIZE_VER0: type, size, config, sample_period,
            # sample_type, read_format, flags (bit 0: disabled).
            attr = ctypes.create_string_buffer(
                struct.pack("<IIQQQQQ", _PERF_TYPE_TRACEPOINT, 64, tracepoint, 0, 0, 0, 1), 64)
            fd = libc.syscall(nr, attr, 0, -1, -1, _PERF_FLAG_FD_CLOEXEC)
            if fd >= 0:
                self.fds.append(fd)

    def release(self, background=False):
        """Close the held events (in a thread if `background`); join() waits for it."""
        fds, self.fds = self.fds, []
        if not fds:
            return
        if background:
            import threading

            self._releasing = threading.Thread(target=_close_all, args=(fds,), daemon=True)
            self._releasing.start()
        else:
            _close_all(fds)

    def join(self):
        self.release()
        if self._releasing is not None:
            self._releasing.join()
            self._releasing = None


def _close_all(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
