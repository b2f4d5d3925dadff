import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000


def g(x):
    return x + 1


def f(i):
    return g(i) + g(len("ab"))


def main():
    total = 0
    for i in range(N):
        total += f(i)
    return total


main()
