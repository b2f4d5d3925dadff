# Tracing enabled and disabled by the API inside a function, while a second thread is inside
# a call: frames still open at disable() must get their pops.
import sys
import threading
import time

import etwtrace

stop = threading.Event()
started = threading.Event()


def spin():
    def inner():
        started.set()
        while not stop.is_set():
            time.sleep(0.001)
    inner()


def main():
    tracer = etwtrace.InstrumentedTracer(trace_path=sys.argv[1])
    tracer.enable()
    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    started.wait()
    etwtrace._mark_stack("inside")
    tracer.disable()
    stop.set()
    thread.join()
    print("done")


main()
