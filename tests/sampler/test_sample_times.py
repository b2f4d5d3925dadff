"""A sample's timestamp is when it was taken: the timeline of a sampler trace puts each sample in
the phase of the program that ran then, whenever the drain thread wrote it."""

PHASES = """\
import threading
import time

PHASE = "def phase_%s(seconds):\\n    spin(seconds)\\n"

def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass

def now():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)

# Each phase runs a function first seen in it: its definition is written when the drain
# resolves the phase's samples, after them in time.
namespace = {"spin": spin}
bounds = [now()]
for name in "abc":
    exec(PHASE % name, namespace)
    namespace["phase_" + name](0.25)
    bounds.append(now())
exec(PHASE % "d", namespace)
worker = threading.Thread(target=namespace["phase_d"], args=(0.25,))
worker.start()
worker.join()
bounds.append(now())
print(*bounds)
"""


def phase_of(event):
    for frame in event.stack:
        if frame.is_python and frame.name.startswith("phase_"):
            return frame.name[len("phase_"):]
    return None


def test_each_sample_is_stamped_when_it_was_taken(run_sampled):
    run = run_sampled(PHASES, "--sample-rate", "1000")
    assert run.proc.returncode == 0, run.proc.stderr
    bounds = [int(b) for b in run.proc.stdout.split()]
    by_phase = {}
    for event in run.events():
        phase = phase_of(event)
        if phase:
            by_phase.setdefault(phase, []).append(event.timestamp)
    assert sorted(by_phase) == ["a", "b", "c", "d"], sorted(by_phase)
    for index, phase in enumerate("abcd"):
        start, end = bounds[index], bounds[index + 1]
        stamps = sorted(by_phase[phase])
        # 0.25 s of CPU at 1 kHz: ~250 samples (fewer on a machine so loaded that context
        # switches take much of the thread's CPU time: the task-clock does not count them),
        # each inside its phase, and never two closer than most of a period: each at its own
        # instant, not bunched at the moment the drain wrote them.
        assert len(stamps) >= 50, (phase, len(stamps))
        outside = [s for s in stamps if not start <= s <= end]
        assert not outside, (phase, len(outside), (outside[0] - end) / 1e6)
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        assert min(gaps) >= 0.5e6, (phase, sorted(gaps)[:5])
