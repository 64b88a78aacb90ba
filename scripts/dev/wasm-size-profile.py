#!/usr/bin/env python3
"""Where the bytes of a component go: code size per crate of its core module(s).

Usage: wasm-size-profile.py FILE.wasm [TOP]. Build with symbols for useful names
(`--config profile.wasm.strip=false`). Reads the component binary format directly.
"""
import re
import sys
from collections import Counter


def leb(data, pos):
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos


def sections(data, start, end):
    pos = start
    while pos < end:
        sid = data[pos]
        size, pos = leb(data, pos + 1)
        yield sid, pos, pos + size
        pos += size


def core_modules(data):
    # A component has layer 1 in its preamble; its section 1 holds a whole core module.
    if data[4:8] == b"\x0d\x00\x01\x00":
        for sid, s, e in sections(data, 8, len(data)):
            if sid == 1:
                yield from core_modules(data[s:e])
            elif sid == 4:  # nested component
                yield from core_modules(data[s:e])
    else:
        yield data


def crate_of(name):
    m = re.match(r"_ZN(\d+)(\S+)", name)
    if m:
        n = int(m.group(1))
        part = m.group(2)[:n]
        if part.startswith("_$LT$"):
            inner = re.search(r"_\$LT\$([A-Za-z0-9_]+)", part)
            return inner.group(1) if inner else part
        return part
    return name.split("::")[0][:40]


def profile(module):
    funcs_imported = 0
    bodies = []
    names = {}
    for sid, s, e in sections(module, 8, len(module)):
        if sid == 2:  # imports
            count, p = leb(module, s)
            for _ in range(count):
                for _ in range(2):
                    ln, p = leb(module, p)
                    p += ln
                kind = module[p]
                p += 1
                if kind == 0:
                    funcs_imported += 1
                    _, p = leb(module, p)
                elif kind == 1:
                    p += 1
                    flags, p = leb(module, p)
                    _, p = leb(module, p)
                    if flags & 1:
                        _, p = leb(module, p)
                elif kind == 2:
                    flags, p = leb(module, p)
                    _, p = leb(module, p)
                    if flags & 1:
                        _, p = leb(module, p)
                elif kind == 3:
                    p += 2
        elif sid == 10:
            count, p = leb(module, s)
            for _ in range(count):
                size, p2 = leb(module, p)
                bodies.append(size + (p2 - p))
                p = p2 + size
        elif sid == 0:
            ln, p = leb(module, s)
            if module[p : p + ln] == b"name":
                p += ln
                while p < e:
                    sub = module[p]
                    size, p = leb(module, p + 1)
                    if sub == 1:
                        q = p
                        count, q = leb(module, q)
                        for _ in range(count):
                            idx, q = leb(module, q)
                            ln2, q = leb(module, q)
                            names[idx] = module[q : q + ln2].decode("utf-8", "replace")
                            q += ln2
                    p += size
    per_crate = Counter()
    for i, size in enumerate(bodies):
        per_crate[crate_of(names.get(i + funcs_imported, "?"))] += size
    return len(module), sum(bodies), per_crate


def main():
    data = open(sys.argv[1], "rb").read()
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    for module in core_modules(data):
        total, code, per_crate = profile(module)
        print(f"core module: {total} bytes, code {code} bytes")
        for crate, size in per_crate.most_common(top):
            print(f"  {size:8d}  {crate}")


main()
