import os

import etwtrace


def child_work():
    etwtrace._mark_stack("child")


def parent_work():
    etwtrace._mark_stack("parent")


def spawn():
    pid = os.fork()
    if pid == 0:
        child_work()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    parent_work()


spawn()
