"""A small ray tracer (written here): vector objects with operator methods, spheres and a
plane, diffuse and specular shading with shadows and one reflection (float maths, many small
method calls)."""

import math


class V:
    __slots__ = ("x", "y", "z")

    def __init__(self, x, y, z):
        self.x, self.y, self.z = x, y, z

    def __add__(self, o):
        return V(self.x + o.x, self.y + o.y, self.z + o.z)

    def __sub__(self, o):
        return V(self.x - o.x, self.y - o.y, self.z - o.z)

    def __mul__(self, k):
        return V(self.x * k, self.y * k, self.z * k)

    def dot(self, o):
        return self.x * o.x + self.y * o.y + self.z * o.z

    def norm(self):
        length = math.sqrt(self.dot(self))
        return self * (1.0 / length)


class Sphere:
    def __init__(self, centre, radius, colour, reflect):
        self.centre, self.radius, self.colour, self.reflect = centre, radius, colour, reflect

    def hit(self, origin, direction):
        oc = origin - self.centre
        b = oc.dot(direction)
        c = oc.dot(oc) - self.radius * self.radius
        disc = b * b - c
        if disc < 0:
            return None
        t = -b - math.sqrt(disc)
        return t if t > 1e-4 else None

    def normal(self, point):
        return (point - self.centre).norm()


class Plane:
    def __init__(self, y, colour, reflect):
        self.y, self.colour, self.reflect = y, colour, reflect

    def hit(self, origin, direction):
        if abs(direction.y) < 1e-9:
            return None
        t = (self.y - origin.y) / direction.y
        return t if t > 1e-4 else None

    def normal(self, point):
        return V(0.0, 1.0, 0.0)


SCENE = [Sphere(V(0, 1, 5), 1.0, V(1, 0.2, 0.2), 0.3), Sphere(V(-2, 0.7, 6), 0.7, V(0.2, 1, 0.2), 0.1),
         Sphere(V(2, 0.5, 4), 0.5, V(0.2, 0.2, 1), 0.5), Plane(0.0, V(0.8, 0.8, 0.8), 0.2)]
LIGHT = V(5, 10, -3)


def nearest(origin, direction):
    best, best_t = None, float("inf")
    for thing in SCENE:
        t = thing.hit(origin, direction)
        if t is not None and t < best_t:
            best, best_t = thing, t
    return best, best_t


def trace(origin, direction, depth):
    thing, t = nearest(origin, direction)
    if thing is None:
        return V(0.1, 0.1, 0.2)
    point = origin + direction * t
    normal = thing.normal(point)
    to_light = (LIGHT - point).norm()
    shadow, _ = nearest(point, to_light)
    diffuse = max(0.0, normal.dot(to_light)) if shadow is None else 0.0
    colour = thing.colour * (0.1 + 0.9 * diffuse)
    if depth < 2 and thing.reflect > 0:
        reflected = direction - normal * (2 * direction.dot(normal))
        colour = colour * (1 - thing.reflect) + trace(point, reflected.norm(), depth + 1) * thing.reflect
    return colour


def run(scale):
    size = max(4, int(64 * math.sqrt(scale)))
    eye = V(0, 1, -1)
    total = 0.0
    for y in range(size):
        for x in range(size):
            d = V((x - size / 2) / size, (size / 2 - y) / size + 0.2, 1.0).norm()
            c = trace(eye, d, 0)
            total += c.x + c.y + c.z
    return total
