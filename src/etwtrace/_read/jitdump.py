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


def read_jitdump(path):
    """PythonFunction events from one jitdump file (code-load + debug-info records)."""
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
    pos = header_size
    lines = {}
    while pos + 16 <= len(data):
        rec_id, rec_size, timestamp = struct.unpack_from(endian + "IIQ", data, pos)
        if rec_size < 16 or pos + rec_size > len(data):
            break  # a record cut short by a crash: everything before it is intact
        body = pos + 16
        if rec_id == _JIT_CODE_DEBUG_INFO:
            code_addr, nr_entry = struct.unpack_from(endian + "QQ", data, body)
            if nr_entry:
                _addr, lineno, _discrim = struct.unpack_from(endian + "Qii", data, body + 16)
                lines[code_addr] = lineno
        elif rec_id == _JIT_CODE_LOAD:
            pid, tid, _vma, code_addr, code_size, code_index = struct.unpack_from(endian + "IIQQQQ", data, body)
            name_start = body + 40
            name_end = data.index(b"\0", name_start, pos + rec_size)
            qualname, filename = _split_py_name(data[name_start:name_end].decode("utf-8", "replace"))
            events.append(Event("PythonFunction", pid or file_pid, tid, timestamp, {
                "FunctionID": code_index,
                "BeginAddress": code_addr,
                "EndAddress": code_addr + code_size,
                "LineNumber": lines.pop(code_addr, 0),
                "SourceFile": filename,
                "Name": qualname,
                "IsPythonCode": True,
            }, source="jitdump"))
        pos += rec_size
    return events
