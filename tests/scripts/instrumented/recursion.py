import sys

import etwtrace


def down(n):
    if n == 0:
        etwtrace._mark_stack("bottom")
        return 0
    return 1 + down(n - 1)


down(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
