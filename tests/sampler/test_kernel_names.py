"""Kernel frames are named from /proc/kallsyms, which the sampler loads on a thread of its own
the first time a sample has them. A drain that cannot wait for it (before a code object dies,
before a mark) writes the sample at once and names its kernel frames once the names are
loaded: the program never waits for the load, and no frame is left without its name."""

import os

import pytest

from etwtrace._read import TraceFile

CHURN = """\
import os

def syscalls(n):
    fd = os.open("/dev/null", os.O_WRONLY)
    for _ in range(n):
        os.write(fd, b"x" * 64)
        os.stat("/")
    os.close(fd)

for i in range(40):
    syscalls(2000)
    # A code object dies right after samples with kernel frames were taken, from the first
    # iteration on: before the kernel's names can have been loaded.
    code = compile(f"def f{i}():\\n    pass\\n", "<churn>", "exec")
    exec(code, {})
    del code
"""


def test_kernel_frames_sampled_before_a_code_object_dies_are_named(run_sampled):
    if os.geteuid() != 0 and int(open("/proc/sys/kernel/perf_event_paranoid").read()) > 1:
        pytest.skip("kernel call chains need perf_event_paranoid <= 1 or root")
    run = run_sampled(CHURN, "--sample-rate", "1000")
    assert run.proc.returncode == 0, run.proc.stderr
    (trace,) = run.traces
    assert TraceFile(trace).sampler["unknown_nodes"] == 0
    with_kernel = []
    for e in run.events():
        kinds = "".join("k" if f.module == "[kernel.kallsyms]" else "p" if f.is_python else "n" for f in e.stack)
        if "k" in kinds and "p" in kinds:
            assert kinds.lstrip("k").find("k") == -1, kinds  # kernel frames lead, leaf first
            with_kernel.append(e)
    # (compile() and freeing memory enter the kernel too: their samples count, not their chain)
    in_syscalls = [e for e in with_kernel if [f.name for f in e.stack if f.is_python][0] == "syscalls"]
    assert len(in_syscalls) >= 10, len(in_syscalls)
    for e in in_syscalls:
        assert [(f.name, f.line) for f in e.stack if f.is_python][1:] == [("<module>", 11)]
    for e in with_kernel:
        kernel = [f for f in e.stack if f.module == "[kernel.kallsyms]"]
        assert all(f.name and not f.name.startswith("0x") for f in kernel), [f.name for f in kernel]
    assert any(f.name.startswith(("do_syscall", "entry_SYSCALL", "__x64_sys", "ksys_write", "vfs_"))
               for e in with_kernel for f in e.stack if f.module == "[kernel.kallsyms]")
