"""jitdump files (perf's JIT interface, tools/perf/Documentation/jitdump-specification.txt).

In stack mode every thunk is a code-load record (its address range and `py::qualname:file`
name) followed by a debug-info record (its first line): those give the PythonFunction events
of processes for which no `function` probe was recorded.
"""

import struct

from .events import Event

_JIT_MAGIC = 0x4A695444
_JIT_CODE_LOAD = 0
_JIT_CODE_DEBUG_INFO = 2


def _split_py_name(name):
    """'py::qualname:file' -> (qualname, file); other names -> (name, '')."""
    if name.startswith("py::"):
        qualname, _, filename = name[4:].partition(":")
        return qualname, filename
    return name, ""


def read_jitdump(path, warn=None):
    """PythonFunction events from one jitdump file (code-load + debug-info records).

    A record cut short (a crash mid-write) ends the file quietly: everything before it is
    intact. A record that is whole but malformed ends it too, and `warn(message)` says so.
    """
    events = []
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 40:
        return events
    magic = struct.unpack_from("<I", data, 0)[0]
    endian = "<" if magic == _JIT_MAGIC else ">"
    if struct.unpack_from(endian + "I", data, 0)[0] != _JIT_MAGIC:
        return events
    _version, header_size, _mach, _pad, file_pid = struct.unpack_from(endian + "IIIII", data, 4)
    pos = max(header_size, 40)
    lines = {}
    while pos + 16 <= len(data):
        rec_id, rec_size, timestamp = struct.unpack_from(endian + "IIQ", data, pos)
        if rec_size < 16 or pos + rec_size > len(data):
            break  # a record cut short by a crash: everything before it is intact
        record = data[pos:pos + rec_size]
        try:
            if rec_id == _JIT_CODE_DEBUG_INFO:
                code_addr, nr_entry = struct.unpack_from(endian + "QQ", record, 16)
                if nr_entry:
                    _addr, lineno, _discrim = struct.unpack_from(endian + "Qii", record, 32)
                    lines[code_addr] = lineno
            elif rec_id == _JIT_CODE_LOAD:
                pid, tid, _vma, code_addr, code_size, code_index = struct.unpack_from(endian + "IIQQQQ", record, 16)
                name_end = record.index(b"\0", 56)
                qualname, filename = _split_py_name(record[56:name_end].decode("utf-8", "replace"))
                events.append(Event("PythonFunction", pid or file_pid, tid, timestamp, {
                    "FunctionID": code_index,
                    "BeginAddress": code_addr,
                    "EndAddress": code_addr + code_size,
                    "LineNumber": lines.pop(code_addr, 0),
                    "SourceFile": filename,
                    "Name": qualname,
                    "IsPythonCode": True,
                }, source="jitdump"))
        except (struct.error, ValueError):
            if warn is not None:
                warn(f"{path} is damaged at byte {pos} (a malformed record): the functions after it "
                     "have no names")
            break
        pos += rec_size
    return events
