"""Floating-point simulation: n bodies under gravity, lists of floats, tight loops."""


def run(scale):
    bodies = [[float(i), float(i * 2 % 5), float(i * 3 % 7), 0.1 * i, 0.2, -0.1, 1.0 + i] for i in range(5)]
    pairs = [(bodies[i], bodies[j]) for i in range(5) for j in range(i + 1, 5)]

    def advance(dt):
        for b1, b2 in pairs:
            dx, dy, dz = b1[0] - b2[0], b1[1] - b2[1], b1[2] - b2[2]
            mag = dt * ((dx * dx + dy * dy + dz * dz) + 0.01) ** -1.5
            b1m, b2m = b1[6] * mag, b2[6] * mag
            b1[3] -= dx * b2m
            b1[4] -= dy * b2m
            b1[5] -= dz * b2m
            b2[3] += dx * b1m
            b2[4] += dy * b1m
            b2[5] += dz * b1m
        for b in bodies:
            b[0] += dt * b[3]
            b[1] += dt * b[4]
            b[2] += dt * b[5]

    for _ in range(max(1, int(6000 * scale))):
        advance(0.01)
    return bodies[0][0]
