"""Imported by known_shape.py: spends CPU at import time, under the import machinery."""


def _work():
    x = 0
    for i in range(300000):
        x = (x * 13 + i) % 10007
    return x


VALUE = _work()
