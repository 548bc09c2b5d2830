#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of the fuzz targets: small valid examples of each
format, so that fuzzing starts from inputs that reach deep. Run it again
after changing a format; the seeds are committed."""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def varlink():
    calls = [
        {"method": "io.mplock.Manager.List"},
        {"method": "io.mplock.Manager.Status", "parameters": {"id": 1}},
        {"method": "io.mplock.Manager.Wait", "parameters": {"id": 7}, "more": True},
        {"method": "io.mplock.Manager.Results", "parameters": {"id": 2, "offset": 10, "limit": 100}},
        {"method": "io.mplock.Manager.Submit", "parameters": {
            "module": "/m.so", "input": "/i", "output": "/o", "workers": 4, "shared": {"ms": 5, "l": [1, "a"]},
            "save_batch": 10, "batch_size": 2, "name": "x", "timeout": 5, "halt_on_failure": "5%"}},
        {"method": "io.mplock.Manager.Submit", "parameters": {"module": "/m.so", "items": ["a", "", "\u00e9"],
                                                               "output": "/o"}, "oneway": True},
        {"method": "org.varlink.service.GetInfo"},
    ]
    for i, c in enumerate(calls):
        write("varlink", "call%d" % i, json.dumps(c).encode() + b"\0")
    write("varlink", "pipelined", b"".join(json.dumps(c).encode() + b"\0" for c in calls))


def checkpoint():
    n_items = 100
    prefix = struct.pack("<HH", n_items - 1, 0)  # n_items = 1 + (n-1) % 5000, no snapshot

    def log_header(gen=0):
        h = b"MPLCKLOG" + struct.pack("<IIQI", 1, gen, n_items, 0)
        return h + struct.pack("<I", crc32c(h))

    def record(seq, results_len, done, failed, ranges):
        body = struct.pack("<IIQQQQI", 0x434C504D, len(ranges), seq, results_len, done, failed, 0)
        rb = b"".join(struct.pack("<QQ", a, b) for a, b in ranges)
        crc = crc32c(body + struct.pack("<I", 0) + rb)
        return body + struct.pack("<I", crc) + rb

    log = log_header() + record(1, 100, 10, 1, [(0, 10)]) + record(2, 250, 25, 1, [(10, 5), (20, 10)])
    write("checkpoint", "log", prefix + log)
    write("checkpoint", "log-torn", prefix + log[:-7])
    # A snapshot at seq 2, then a log with record 3.
    bm = bytearray(16)
    for i in list(range(0, 15)) + list(range(20, 30)):
        bm[i // 8] |= 1 << (i % 8)
    snap_h = b"MPLCKSNP" + struct.pack("<IIQQQQQI", 1, 64, n_items, 2, 250, 25, 1, crc32c(bytes(bm)))
    snap = snap_h + struct.pack("<I", crc32c(snap_h)) + bytes(bm)
    log2 = log_header() + record(3, 300, 30, 1, [(40, 5)])
    write("checkpoint", "snapshot", struct.pack("<HH", n_items - 1, len(snap)) + snap + log2)


def results():
    def file_header(job=1, gen=0, version=1):
        h = b"MPLRES\0\1" + struct.pack("<IIQI", version, 32, job, gen)
        return h + struct.pack("<I", crc32c(h))

    def block(first, items):
        payload = b"".join(struct.pack("<IIi", len(it), len(res), st) + it + res for it, res, st in items)
        h = struct.pack("<IIQII", 0x424C504D, len(items), first, len(payload), 0)
        crc = crc32c(h + payload)
        return struct.pack("<IIQII", 0x424C504D, len(items), first, len(payload), crc) + payload

    # Version 2: "MPL2" blocks, each item also with attempts, worker and
    # run_usec as LEB128 varints.
    def varint(v):
        out = b""
        while v >= 0x80:
            out += bytes([(v & 0x7F) | 0x80])
            v >>= 7
        return out + bytes([v])

    def block_v2(first, items):
        payload = b"".join(struct.pack("<IIi", len(it), len(res), st) + varint(att) + varint(1) + varint(1500) +
                           it + res for it, res, st, att in items)
        h = struct.pack("<IIQII", 0x324C504D, len(items), first, len(payload), 0)
        crc = crc32c(h + payload)
        return struct.pack("<IIQII", 0x324C504D, len(items), first, len(payload), crc) + payload

    data = file_header() + block(5, [(b"5", b"25", 0), (b"6", b"36", 0)]) + \
        block(0, [(b"0", b"0", 0), (b"1", b"oops", 42)])
    write("results", "two-blocks", data)
    write("results", "torn", data[:-3])
    data = file_header(version=2) + block(5, [(b"5", b"25", 0)]) + \
        block_v2(0, [(b"0", b"0", 0, 1), (b"1", b"oops", 42, 3)])
    write("results", "v2-mixed", data)


def config():
    write("config", "full", b"# comment\nmax-workers = 8\ncommit-interval=50 # ms\nmax-message-size = 1M\n"
                            b"admin-group = none\nitem-timeout = 0\n")
    write("config", "bad", b"max-workers = 0\nbogus\n=\n")


def journal():
    def header(gen):
        h = b"MPLJRNL1" + struct.pack("<IIQI", 1, 0, gen, 0)
        return h + struct.pack("<I", crc32c(h))

    def record(gen, seq, payload, rtype=1):
        h = struct.pack("<IIQQII", 0x4A4C504D, rtype, gen, seq, len(payload), 0)
        crc = crc32c(h + payload)
        rec = struct.pack("<IIQQII", 0x4A4C504D, rtype, gen, seq, len(payload), crc) + payload
        return rec + b"\0" * (-len(rec) % 8)

    def submit(job_id, spec, items):
        return struct.pack("<QII", job_id, len(spec), 0) + spec + items

    slots = header(3).ljust(512, b"\0") + header(4)
    recs = record(4, 1, submit(7, b'{"version":1,"id":7}', b"a\0b\0")) + \
        record(4, 2, submit(8, b'{"version":1,"id":8}', b""))
    data = slots.ljust(4096, b"\0") + recs
    write("journal", "two-records", data)
    write("journal", "torn", data[:-5])
    write("journal", "old-slot", header(3).ljust(4096, b"\0") + record(3, 1, submit(9, b"{}", b"x\0")))


def text():
    write("text", "base64", b"Zm9vYmFy")
    write("text", "padded", b"Zg==")
    write("text", "utf8-and-not", "caf\u00e9 \U0001f600".encode() + b" \xff\xed\xa0\x80 \xf4\x90\x80\x80")


def cmdline():
    write("cmdline", "direct", b"gzip -9 {}\0a b; rm -rf x")
    write("cmdline", "shell", b"convert {} -resize '50%' {/.}.png | tee {//}/log\0dir/x.y.jpg")
    write("cmdline", "quoted", b"echo \"$(basename {})\"\0$(id)")


if __name__ == "__main__":
    varlink()
    checkpoint()
    results()
    config()
    journal()
    text()
    cmdline()
