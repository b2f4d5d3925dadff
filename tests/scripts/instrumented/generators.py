import etwtrace


def gen(n):
    for i in range(n):
        etwtrace._mark_stack("in-gen")
        yield i


def consume():
    total = 0
    for value in gen(3):
        etwtrace._mark_stack("in-consume")
        total += value
    g = gen(2)
    next(g)
    g.close()
    return total


consume()
