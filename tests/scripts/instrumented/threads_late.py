import threading

import etwtrace


def in_thread(n):
    etwtrace._mark_stack("thread-%d" % n)


def main():
    threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


main()
