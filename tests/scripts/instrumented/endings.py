import os
import signal
import sys
import time

import etwtrace


def work():
    etwtrace._mark_stack("work")


def spin():
    def tick():
        pass

    while True:
        for _ in range(100):
            tick()
        time.sleep(0.01)


how = sys.argv[1]
work()
if how == "exit":
    sys.exit(3)
elif how == "raise":
    raise RuntimeError("unhandled")
elif how == "sigint":
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
elif how == "sigterm-handled":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(4))
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
elif how == "spin":
    print("spinning", flush=True)
    spin()
