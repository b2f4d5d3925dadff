"""Signals: SIGALRM (setitimer) handlers running Python code in the middle of traced calls,
SIGINT to ourselves turned into KeyboardInterrupt and caught, a SIGUSR1 handler that raises,
and at the end an uncaught KeyboardInterrupt (exit by SIGINT, as untraced)."""
import os
import signal
import sys
import time

from _scale import scale

ticks = [0]


def on_alarm(signum, frame):
    ticks[0] += 1


def busy(n):
    return 0 if n == 0 else busy(n - 1) + 1


def on_usr1(signum, frame):
    raise LookupError("from handler")


signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
deadline = time.monotonic() + scale(0.3, 20)
total = 0
while time.monotonic() < deadline or ticks[0] < 20:
    total += busy(50)
signal.setitimer(signal.ITIMER_REAL, 0)
print("alarms", ticks[0] >= 20, total > 0)
try:
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):
        busy(10)
except KeyboardInterrupt:
    print("caught KeyboardInterrupt")
signal.signal(signal.SIGUSR1, on_usr1)
try:
    os.kill(os.getpid(), signal.SIGUSR1)
    for _ in range(1000):
        busy(10)
except LookupError as e:
    print("handler raised", e)
signal.alarm(0)
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGINT)
for _ in range(100000):
    busy(10)
