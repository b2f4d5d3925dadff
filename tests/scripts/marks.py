"""mark, mark_range and _mark_stack through the module functions, inside traced functions."""
import etwtrace


def inner():
    etwtrace.mark("plain mark")
    with etwtrace.mark_range("a range"):
        etwtrace._mark_stack("stack here")


def outer():
    inner()


outer()
print("marked")
