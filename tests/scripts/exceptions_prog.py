"""Exceptions, chaining, finally, tracebacks (printed) and an uncaught error at the end: output,
traceback text and exit status must not change when traced."""
import sys
import traceback


class Custom(Exception):
    pass


def level3(x):
    if x > 1:
        raise Custom(f"level3 got {x}")
    return x


def level2(x):
    try:
        return level3(x)
    finally:
        print("level2 finally", x)


def level1(x):
    try:
        return level2(x)
    except Custom as ex:
        raise ValueError("wrapped") from ex


for value in (1, 2):
    try:
        print("result", level1(value))
    except ValueError:
        print(traceback.format_exc())


def swallow():
    try:
        {}["missing"]
    except KeyError:
        return "swallowed"


print(swallow())
try:
    [1][5]
except IndexError as ex:
    print("index", ex, ex.__traceback__.tb_lineno)

with open(__file__) as f:
    try:
        raise Custom("in with")
    except Custom as ex:
        print(type(ex).__name__, ex, f.closed)


def gen_raises():
    yield 1
    raise Custom("from generator")


try:
    list(gen_raises())
except Custom as ex:
    print("generator raised", ex)

sys.stdout.flush()
level1(5)  # uncaught: traceback on stderr, exit status 1
