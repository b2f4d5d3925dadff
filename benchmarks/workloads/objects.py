"""Object-heavy: small classes with __slots__ and methods, a binary tree built and walked,
sorting with a key method, generator pipelines."""


class Vec:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def add(self, other):
        return Vec(self.x + other.x, self.y + other.y)

    def norm2(self):
        return self.x * self.x + self.y * self.y


class Node:
    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left = left
        self.right = right

    def count(self):
        return 1 + (self.left.count() if self.left else 0) + (self.right.count() if self.right else 0)


def make_tree(depth):
    return Node(make_tree(depth - 1), make_tree(depth - 1)) if depth else Node(None, None)


def run(scale):
    n = max(10, int(20000 * scale))
    vs = [Vec(i % 13, i % 7) for i in range(n)]
    acc = Vec(0, 0)
    for v in vs:
        acc = acc.add(v)
    ordered = sorted(vs, key=Vec.norm2)
    evens = sum(1 for v in (w for w in ordered if w.x % 2 == 0))
    nodes = 0
    for _ in range(max(1, int(2 * scale))):
        nodes += make_tree(13 if scale >= 0.5 else 8).count()
    return acc.norm2(), evens, nodes
