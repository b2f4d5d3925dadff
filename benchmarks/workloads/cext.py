"""C-extension-heavy: zlib, hashlib and json doing the work, few Python calls per byte."""

import hashlib
import json
import zlib


def run(scale):
    data = bytes(range(256)) * 64 + json.dumps(list(range(3000))).encode()
    out = 0
    for i in range(max(1, int(60 * scale))):
        packed = zlib.compress(data, 6)
        out += len(zlib.decompress(packed))
        out += hashlib.sha256(data).digest()[0] + hashlib.md5(packed).digest()[0]
        out += len(json.loads(json.dumps({"i": i, "v": list(range(500))}))["v"])
        out += zlib.crc32(data)
    return out
