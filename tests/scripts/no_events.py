def a():
    b()

def b():
    print("Inside b()")

a()
