"""The capture supervisor: record the launched program with `perf record` into a capture bundle.

Design: the launcher that sees --capture does not run the target itself. It checks everything a
capture needs, registers the etwtrace USDT probes, and then runs

    perf record -k 1 <profile events> -o PATH/perf.raw -- python -m etwtrace --<mode> -- target...

so perf is recording before the traced interpreter even starts: it sees the jitdump mmap and
every thunk's code-load record, follows every thread and child process, and ends (writing a
complete perf.data) however the target ends: normal exit, exception, os._exit, a crash or Ctrl-C.
The launcher stays outside as the supervisor: it returns the target's exit status (perf passes
it through), then runs `perf inject --jit`, gathers the jitdump files, perf maps and trace files
into PATH, writes manifest.json and removes the temporary files. Attaching `perf record -p` to
the launcher itself was rejected: it races with the target's first instructions, and nobody
would be left to finish the capture after os._exit or a crash.

The bundle layout is _bundle.py (prose: docs/capture.md).
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from .. import _bundle
from .._bundle import write_manifest
from .._errors import CaptureError
from .._perf import find_perf, paranoid_level, permission_problem, privileged
from . import probes as _probes
from .child import ENV_CAPTURE, ENV_PGID, ENV_STDERR_FD, ENV_TRACE_DIR, child_command
from .preflight import check_destination, extension_library
from .profiles import load as load_profile


def _warn(message):
    print(f"etwtrace: warning: {message}", file=sys.stderr, flush=True)


def _info(message):
    print(f"etwtrace: {message}", file=sys.stderr, flush=True)


def _prepare_directory(path):
    """Empty `path` (a capture being replaced) or create it."""
    if os.path.isdir(path):
        for entry in os.listdir(path):
            full = os.path.join(path, entry)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.unlink(full)
    else:
        os.mkdir(path)


def _translate_perf_failure(log_text, perf):
    text = log_text.lower()
    if "perf_event_paranoid" in text or "permission" in text or "access to performance monitoring" in text:
        level = paranoid_level()
        return (f"perf is not permitted to record here (kernel.perf_event_paranoid is {level}); "
                "run as root, or allow it with `sudo sysctl kernel.perf_event_paranoid=2`")
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip() and not ln.startswith("[ perf")]
    detail = lines[0] if lines else "no message"
    return f"perf record could not start ({detail}); check the profile's events with `{perf} list`"


def _jitdump_pids(jit_dir):
    pids = set()
    for name in os.listdir(jit_dir):
        if name.startswith("jit-") and name.endswith(".dump"):
            try:
                pids.add(int(name[4:-5]))
            except ValueError:
                pass
    return pids


def _owned_recent(path, since):
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mtime >= since - 1


def _collect(path, pids, started_at):
    """Gather the jitdumps, jitted objects and perf maps of the recorded processes.

    Our thunks' jitdumps are already in PATH/jit (JITDUMPDIR), with the jitted-*.so objects
    perf inject wrote beside them. Dumps written to /tmp (by an interpreter that ignores
    JITDUMPDIR, e.g. CPython's -X perf_jit) are moved in, and their jitted objects removed from
    /tmp (the bundle's build-id cache has them). Perf maps always live in /tmp: moved to maps/.
    Only files of processes seen in the recording (with events, or with a jitdump in PATH/jit),
    owned by us and written since the capture started are touched.
    """
    import glob

    bundle = _bundle.Bundle(path)
    pids = set(pids) | _jitdump_pids(bundle.jit_dir)
    jit_dir = bundle.jit_dir
    maps_dir = bundle.maps_dir
    perf_maps = []
    for pid in sorted(pids):
        stray = f"/tmp/jit-{pid}.dump"
        if _owned_recent(stray, started_at):
            shutil.move(stray, os.path.join(jit_dir, os.path.basename(stray)))
            for so in glob.glob(f"/tmp/jitted-{pid}-*.so"):
                if _owned_recent(so, started_at):
                    os.unlink(so)
        perf_map = f"/tmp/perf-{pid}.map"
        if _owned_recent(perf_map, started_at):
            os.makedirs(maps_dir, exist_ok=True)
            dest = os.path.join(maps_dir, os.path.basename(perf_map))
            shutil.move(perf_map, dest)
            perf_maps.append(os.path.relpath(dest, path))
    jitdumps = sorted(f"jit/{name}" for name in os.listdir(jit_dir) if name.endswith(".dump"))
    return {"jitdumps": jitdumps, "perf_maps": perf_maps, "pids": sorted(pids)}


def _status_of(returncode):
    """(exit status for the launcher, description) from perf's (or the child's) return code."""
    if returncode < 0:
        try:
            name = f" ({signal.Signals(-returncode).name})"
        except ValueError:
            name = ""
        return 128 - returncode, f"was killed by signal {-returncode}{name}"
    return returncode, f"ended with exit status {returncode}"


def _du(path):
    total = 0
    seen = set()
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def run(path, argv, tracer, profile_name=None, profile_file=None, keep_perf_data=False):
    """Run argv (script.py args... or -m module args...) under perf; returns the exit status.

    keep_perf_data: also keep perf.data and the binaries (buildid/) for perf's own tools, as
    the profile's keep_perf_data does; by default the bundle keeps the symbolized events only.
    """
    try:
        return _run(path, argv, tracer, profile_name, profile_file, keep_perf_data)
    except CaptureError as ex:
        print(f"etwtrace: {ex}", file=sys.stderr, flush=True)
        return 2


def _run(path, argv, tracer, profile_name, profile_file, keep_perf_data):
    instrumented = tracer._mode == "instrumented"
    # The sampler samples itself, alone or beside instrumented mode: its trace files are the
    # capture, and perf would only add a second set of samples.
    with_samples = instrumented and bool(tracer._options.get("samples"))
    sampler = tracer._mode == "sampler" or with_samples
    path = check_destination(path)
    profile = load_profile(profile_file, profile_name)
    if keep_perf_data:
        profile.keep_perf_data = True

    perf = perf_version = None
    no_perf_reason = None
    try:
        if not sampler:  # the sampler samples itself: its trace files are the capture
            perf, perf_version = find_perf()
            no_perf_reason = permission_problem()
    except CaptureError as ex:
        no_perf_reason = str(ex)
    if no_perf_reason:
        if not instrumented:
            raise CaptureError(no_perf_reason)
        _warn(f"{no_perf_reason.split(';')[0]}; capturing the instrumented trace file alone")
        perf = None

    tracefs = None
    probes = None
    user_only = perf is not None and not privileged()
    if perf and profile.needs_tracefs:
        tracefs = None if user_only else _probes.find_tracefs(mount=True)
        if tracefs is None and user_only:
            if profile.require_tracefs:
                raise CaptureError(f"profile {profile.name} needs tracefs, which only root can use; run as root")
            _warn("the Python probes and context switches need root (tracefs); "
                  "recording user-space samples only")
        elif tracefs is None:
            what = "the Python probes and context switches"
            if profile.require_tracefs:
                raise CaptureError(
                    "tracefs is not available (as root: `mount -t tracefs nodev /sys/kernel/tracing`), "
                    f"and profile {profile.name} requires it for {what}")
            _warn("tracefs is not available (as root: `mount -t tracefs nodev /sys/kernel/tracing`); "
                  f"recording without {what}")

    _prepare_directory(path)
    started_at = time.time()
    manifest = {
        "format": _bundle.FORMAT,
        "format_version": _bundle.FORMAT_VERSION,
        "complete": False,
        "mode": ("instrumented+sampler" if with_samples else
                 tracer._mode if tracer._mode in ("instrumented", "sampler") else "stack"),
        "command": list(argv),
        "cwd": os.getcwd(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "profile": profile.to_dict(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
    }
    write_manifest(path, manifest)

    try:
        if perf and tracefs and profile.probes:
            library = extension_library()
            try:
                probes = _probes.register(library, tracefs, only=profile.probes)
            except _probes.ProbeError as ex:
                if profile.require_tracefs:
                    raise
                _warn(f"{ex}; recording without the Python probes")
                probes = _probes.ProbeSet(tracefs, "", [])
            if not probes.names and probes.group:
                _warn(f"{os.path.basename(library)} was built without USDT probes "
                      "(install systemtap-sdt-dev and rebuild); recording without them")
    except BaseException:
        # Nothing ran yet: leave no half-made capture behind.
        shutil.rmtree(path, ignore_errors=True)
        if probes is not None:
            probes.remove()
        raise
    try:
        return _record(path, argv, tracer, profile, perf, perf_version, tracefs, probes,
                       user_only, manifest, started_at, instrumented)
    finally:
        if probes is not None:
            probes.remove()
            if probes.tracefs:
                # A stale group still in use when this capture began can go now.
                _probes.remove_stale_groups(probes.tracefs)


def _record(path, argv, tracer, profile, perf, perf_version, tracefs, probes, user_only,
            manifest, started_at, instrumented):
    bundle = _bundle.Bundle(path)
    buildid_dir = bundle.buildid_dir
    trace_dir = bundle.traces_dir
    jit_dir = bundle.jit_dir
    os.makedirs(trace_dir)
    os.makedirs(jit_dir)
    raw = bundle.perf_raw
    log_path = bundle / _bundle.PERF_LOG

    child = child_command(tracer._mode, argv, tracer._options)
    env = dict(os.environ)
    env[ENV_CAPTURE] = path
    env[ENV_TRACE_DIR] = trace_dir
    # Our thunks' jitdump goes straight into the bundle, so perf inject writes the jitted
    # objects there too and `perf report -i PATH/perf.data` finds them without any option.
    env["JITDUMPDIR"] = jit_dir
    stderr_fd = os.dup(2)
    env[ENV_STDERR_FD] = str(stderr_fd)
    env[ENV_PGID] = str(os.getpgrp())

    if perf:
        probe_events = probes.events if probes else {}
        # --no-bpf-event: perf 6.1's side-band thread for BPF events costs about 1 s at the end
        # of every recording here, for events we never read. -N -B: the build-id cache is
        # filled, and build ids are gathered at all (a pass over every sample, ~0.15 s), only
        # when perf.data is kept; else perf script symbolizes against the binaries in place.
        command = [perf, "--buildid-dir", buildid_dir, "record", "-k", "1", "--no-bpf-event",
                   *([] if profile.keep_perf_data else ["-N", "-B"]), "-o", raw,
                   *profile.record_args(probe_events, bool(tracefs), user_only), "--", *child]
        manifest["perf"] = {"version": perf_version, "record": command[:command.index("--")],
                            "probes": {name: len(events) for name, events in sorted(probe_events.items())}}
    else:
        command = child
        manifest["perf"] = None
    write_manifest(path, manifest)

    hold = None
    if perf and tracefs:
        held = [event for events in (probes.events if probes else {}).values() for event in events]
        if profile.context_switches:
            held.append("sched:sched_switch")
        hold = _probes.TracepointHold(tracefs, held)

    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the target
    proc = None

    def forward(signum, _frame):
        if proc is not None:
            try:
                proc.send_signal(signum)
            except OSError:
                pass

    old_term = signal.signal(signal.SIGTERM, forward)
    old_hup = signal.signal(signal.SIGHUP, forward)
    try:
        with open(log_path, "wb") as log:
            # perf runs in a process group of its own, so that Ctrl-C does not stop the
            # recording before the target has handled it (the target rejoins our group).
            proc = subprocess.Popen(command, env=env, pass_fds=(stderr_fd,),
                                    stderr=log if perf else None,
                                    preexec_fn=os.setpgrp if perf else None)
            os.close(stderr_fd)
            while True:
                try:
                    returncode = proc.wait()
                    break
                except KeyboardInterrupt:
                    continue
        ended_at = time.time()
        if hold is not None:
            hold.release(background=True)  # the kernel's grace periods, while perf inject works
        timings_cpu = round(_children_cpu(), 3)
        return _finish(path, manifest, perf, buildid_dir, log_path, trace_dir, jit_dir, raw,
                       returncode, started_at, ended_at, profile.keep_perf_data, timings_cpu)
    finally:
        if hold is not None:
            hold.join()  # before the probe events are removed: the kernel keeps events in use
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGHUP, old_hup)
        try:
            os.close(stderr_fd)
        except OSError:
            pass


class _Step:
    """A finishing step: says what it does on stderr if it takes more than `after` seconds."""

    def __init__(self, message, after=0.5):
        self._timer = threading.Timer(after, _info, (message,))
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()


def _children_cpu():
    """User + system seconds of the subprocesses that ended so far (perf's steps)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _lost_words(perf_info):
    """What perf lost, in words for the closing line, or None."""
    chunks = perf_info.get("lost_chunks") or 0
    samples = perf_info.get("lost_samples") or 0
    parts = []
    if chunks:
        parts.append(f"{chunks:,} chunks of events")
    if samples:
        total = samples + (perf_info.get("samples") or 0)
        parts.append(f"{samples:,} of {total:,} samples ({100 * samples / total:.1f}%)")
    return " and ".join(parts) or None


def _finish(path, manifest, perf, buildid_dir, log_path, trace_dir, jit_dir, raw, returncode,
            started_at, ended_at, keep_perf_data=False, record_cpu=None):
    """After the target: check it ran, inject, symbolize, collect, write the manifest, report."""
    from .._read.perf_data import perf_stats, symbolize

    started_marker = os.path.join(path, _bundle.STARTED)
    started = os.path.exists(started_marker)
    with open(log_path, "rb") as f:
        log_text = f.read().decode(errors="replace")
    if not started:
        message = _translate_perf_failure(log_text, perf) if perf else f"the target could not start (exit status {returncode})"
        shutil.rmtree(path, ignore_errors=True)
        raise CaptureError(message)
    os.unlink(started_marker)
    if not perf:
        os.unlink(log_path)

    status, how = _status_of(returncode)
    manifest.update({"exit_status": status, "ending": how, "duration_s": round(ended_at - started_at, 3)})

    lost = None
    events = 0
    pids = set()
    finish_started = time.time()
    timings = {"record_s": round(ended_at - started_at, 3)}
    if record_cpu is not None:
        timings["record_cpu_s"] = record_cpu  # perf record and the target, user + system
    if perf:
        info = manifest["perf"]
        data = os.path.join(path, _bundle.PERF_DATA)
        cpu = _children_cpu()
        with _Step("finishing the capture: perf inject --jit..."):
            # perf's loss counts (perf report --stats) and perf inject both only read perf.raw:
            # run side by side, the counting costs no wall time where a CPU is free.
            stats = {}
            counting = threading.Thread(target=lambda: stats.update(perf_stats(raw, perf) or {}), daemon=True)
            counting.start()
            inject = subprocess.run([perf, "--buildid-dir", buildid_dir, "inject", "--jit", "-i", raw, "-o", data],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            counting.join()
        info.update({"samples": stats.get("samples", 0), "lost_chunks": stats.get("lost_chunks", 0),
                     "lost_samples": stats.get("lost_samples", 0)})
        samples = info["samples"]
        timings["inject_s"] = round(time.time() - finish_started, 3)
        timings["inject_cpu_s"] = round(_children_cpu() - cpu, 3)
        cpu = _children_cpu()
        if inject.returncode != 0 or not os.path.exists(data):
            why = inject.stderr.decode(errors="replace").strip().splitlines()
            _warn(f"perf inject --jit failed ({why[-1] if why else inject.returncode}); "
                  "keeping the recording without JIT objects")
            if os.path.exists(data):
                os.unlink(data)
            os.replace(raw, data)
            info["injected"] = False
        else:
            info["injected"] = True
            os.unlink(raw)
        # Symbolize once, while every binary (and /tmp/perf-<pid>.map) is at hand.
        with _Step(f"symbolizing {samples:,} samples (perf script)..."):
            try:
                events, pids = symbolize(path, data, os.path.join(path, _bundle.EVENTS), perf,
                                         buildid_dir=buildid_dir)
                info["events"] = events
                timings["symbolize_s"] = round(time.time() - finish_started - timings["inject_s"], 3)
                timings["symbolize_cpu_s"] = round(_children_cpu() - cpu, 3)
            except (CaptureError, OSError, ValueError) as ex:
                _warn(f"{ex}; keeping perf.data to be read with perf script")
                keep_perf_data = True
        info["kept_perf_data"] = keep_perf_data
        if not keep_perf_data:
            os.unlink(data)
            shutil.rmtree(buildid_dir, ignore_errors=True)
        lost = _lost_words(info)
        warnings = [ln.strip() for ln in log_text.splitlines() if "lost" in ln.lower()]
        if info["lost_chunks"]:
            # The form the report's health line (and anyone grepping the log) reads.
            warnings.append(f"perf lost {info['lost_chunks']} chunks of events while recording")
        if warnings:
            info["warnings"] = warnings
    manifest.update(_collect(path, pids, started_at))
    manifest["traces"] = sorted(os.listdir(trace_dir))
    if not os.listdir(jit_dir):
        os.rmdir(jit_dir)
    if not manifest["traces"]:
        os.rmdir(trace_dir)
    manifest["complete"] = True
    timings["finish_s"] = round(time.time() - finish_started, 3)
    manifest["timings"] = timings
    manifest["size_bytes"] = _du(path)
    binaries = _du(buildid_dir) if os.path.isdir(buildid_dir) else 0
    write_manifest(path, manifest)

    size = manifest["size_bytes"]
    sizes = f"{size / 1e6:.1f} MB"
    if perf:
        sizes += f", {events:,} events"
    if binaries:
        sizes += f", of which {binaries / 1e6:.0f} MB of binaries in buildid/ for perf's own tools"
    if lost:
        _warn(f"perf lost {lost} while recording (its buffer was full): the capture is incomplete; "
              "give the profile a bigger mmap_pages or a lower frequency")
        sizes += f"; perf LOST {lost}"
    _info(f"capture saved to {path} ({sizes}); the target {how}")
    quoted = _quote(path)
    _info(f"see where the time went: python -m etwtrace report {quoted}")
    _info(f"                     or: python -m etwtrace report {quoted} --format html -o {_quote(path + '.html')}")
    _info(f"every event: python -m etwtrace dump {quoted}")
    if perf and os.path.exists(os.path.join(path, _bundle.PERF_DATA)):
        _info(f"perf's own views: perf --buildid-dir {_quote(buildid_dir)} report "
              f"-i {_quote(os.path.join(path, _bundle.PERF_DATA))}")
    if returncode < 0 and -returncode == signal.SIGINT:
        # End like an interrupted program, so a calling shell sees the interruption.
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return status


def _quote(text):
    import shlex

    return shlex.quote(text)
