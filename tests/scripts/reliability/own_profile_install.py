"""The first events a program's own profile function gets after its installation: untraced,
none for the installing call itself when no profiler was active (sys.setprofile,
threading.setprofile in a new thread, 3.12+ threading.setprofile_all_threads), and its
c_return when another thread already profiles (3.12+: then the call site is instrumented)."""
import sys
import threading


def recorder(seen):
    def hook(frame, event, arg):
        if event.startswith("c_"):
            seen.append((event, getattr(arg, "__name__", None)))
    return hook


seen = []
sys.setprofile(recorder(seen))
len("x")
sys.setprofile(None)
print("sys.setprofile", seen)

seen = []
threading.setprofile(recorder(seen))
t = threading.Thread(target=len, args=("y",))
t.start()
t.join()
threading.setprofile(None)
print("threading.setprofile", seen[:2])

if hasattr(threading, "setprofile_all_threads"):
    seen = []
    threading.setprofile_all_threads(recorder(seen))
    len("z")
    threading.setprofile_all_threads(None)
    print("threading.setprofile_all_threads", seen)

seen = []
started, done = threading.Event(), threading.Event()


def other_thread_profiles():
    sys.setprofile(lambda *args: None)
    started.set()
    done.wait()
    sys.setprofile(None)


t = threading.Thread(target=other_thread_profiles)
t.start()
started.wait()
sys.setprofile(recorder(seen))
len("w")
sys.setprofile(None)
done.set()
t.join()
print("while another thread profiles", seen)
