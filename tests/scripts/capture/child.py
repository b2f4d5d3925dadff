import etwtrace


def in_child():
    etwtrace._mark_stack("child")


in_child()
