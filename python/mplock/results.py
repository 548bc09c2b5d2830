# SPDX-License-Identifier: MIT
"""The built-in results file (common/results.h), read straight from disk.

A job's results file holds a 32-byte header, then blocks in completion
order; each block is a ResultsBlockHeader (magic "MPLB" or, from version
2, "MPL2"; count, first, payload_len, crc) and `count` records of
consecutive indices first, first+1, ..., each an item header (in an "MPLB"
block: item_len, result_len, status; in an "MPL2" block also attempts,
worker and run_usec, each a LEB128 varint), the item bytes and the result
bytes (the error message when status != 0). All
integers are in host byte order. Only the first `results_committed` bytes
(as Status reports them) are committed: what lies past them may be torn or
undone by a recovery, so it is never read.

The Python bridge stores each result as a tagged byte string (decode()).
Reading the file is much faster than paging it through the Results method,
and works for results too large for a Varlink message."""

import os
import pickle
import struct
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

FILE_MAGIC = b"MPLRES\0\1"
FILE_HEADER = struct.Struct("=8sIIQII")   # magic, version, header_size, job_id, gen, crc
BLOCK_HEADER = struct.Struct("=IIQII")    # magic, count, first, payload_len, crc
ITEM_HEADER = struct.Struct("=IIi")       # item_len, result_len, status
BLOCK_MAGIC = 0x424C504D                  # "MPLB"
BLOCK_MAGIC_V2 = 0x324C504D               # "MPL2"
BLOCK_PAYLOAD_MAX = 64 << 20              # RESULTS_BLOCK_PAYLOAD_MAX
VERSIONS = (1, 2)

assert FILE_HEADER.size == 32 and BLOCK_HEADER.size == 24 and ITEM_HEADER.size == 12


class ResultsFormatError(ValueError):
    """The committed part of a results file does not have the documented layout."""


class Record(NamedTuple):
    """One item's record: its index, item bytes, status (0, or its error
    code) and data (the tagged result, or the error message)."""
    index: int
    item: bytes
    status: int
    data: bytes
    # The joblog (version 2): the attempt that made this record, its
    # worker and the call's time; attempts 0 where the file does not say.
    attempts: int = 0
    worker: int = 0
    run_usec: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 0


def parse_file_header(raw: bytes) -> Tuple[int, int, int]:
    """(header_size, job_id, gen) of a results file's first bytes."""
    if len(raw) < FILE_HEADER.size:
        raise ResultsFormatError("results file header is short (%d bytes)" % len(raw))
    magic, version, header_size, job_id, gen, _crc = FILE_HEADER.unpack_from(raw)
    if magic != FILE_MAGIC or version not in VERSIONS or header_size < FILE_HEADER.size:
        raise ResultsFormatError("not an mplock results file (magic %r, version %d)" % (magic, version))
    return header_size, job_id, gen



def _varint(buf, p, end, off):
    """A LEB128 varint at p (a version-2 record's joblog): (value, next p)."""
    v = shift = 0
    while p < end and shift < 64:
        b = buf[p]
        p += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, p
        shift += 7
    raise ResultsFormatError("a record's joblog in the block at byte %d runs past it" % off)

def parse_blocks(buf: bytes, start: int = 0) -> Iterator[Record]:
    """The records of the whole blocks in buf[start:], which must end on a
    block boundary (the committed length always does)."""
    off, end = start, len(buf)
    while off < end:
        if end - off < BLOCK_HEADER.size:
            raise ResultsFormatError("torn block header at byte %d" % off)
        magic, count, first, payload_len, _crc = BLOCK_HEADER.unpack_from(buf, off)
        if magic not in (BLOCK_MAGIC, BLOCK_MAGIC_V2) or count == 0 or payload_len > BLOCK_PAYLOAD_MAX:
            raise ResultsFormatError("bad block header at byte %d" % off)
        v2 = magic == BLOCK_MAGIC_V2
        ih = ITEM_HEADER
        p = off + BLOCK_HEADER.size
        block_end = p + payload_len
        if block_end > end:
            raise ResultsFormatError("block at byte %d runs past the committed length" % off)
        for index in range(first, first + count):
            if block_end - p < ih.size:
                raise ResultsFormatError("block at byte %d holds fewer records than it says" % off)
            attempts = worker = run_usec = 0
            item_len, result_len, status = ih.unpack_from(buf, p)
            p += ih.size
            if v2:
                attempts, p = _varint(buf, p, block_end, off)
                worker, p = _varint(buf, p, block_end, off)
                run_usec, p = _varint(buf, p, block_end, off)
                if attempts > 0xFFFF or worker > 0xFFFF:
                    raise ResultsFormatError("record %d of the block at byte %d has a bad joblog" % (index, off))
            if item_len + result_len > block_end - p:
                raise ResultsFormatError("record %d overruns its block" % index)
            item = buf[p:p + item_len]
            p += item_len
            yield Record(index, item, status, buf[p:p + result_len], attempts, worker, run_usec)
            p += result_len
        if p != block_end:
            raise ResultsFormatError("block at byte %d has %d bytes past its records" % (off, block_end - p))
        off = block_end


class ResultsReader:
    """Reads a results file's committed prefix incrementally: each read()
    returns the records committed since the last one. A retry rewrites the
    file (a new generation); the reader then starts over and returns every
    record again, so callers key records by index."""

    def __init__(self, path: str):
        self.path = path
        self.offset = 0            # bytes consumed; 0: header not read yet
        self.identity = None       # (st_dev, st_ino, gen) of the file being read

    def read(self, committed: int) -> List[Record]:
        if committed <= 0:
            return []
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            head = f.read(FILE_HEADER.size)
            header_size, _job_id, gen = parse_file_header(head)
            identity = (st.st_dev, st.st_ino, gen)
            if identity != self.identity or committed < self.offset:
                self.identity, self.offset = identity, header_size
            if committed <= self.offset:
                return []
            if st.st_size < committed:
                raise ResultsFormatError("%s is shorter (%d bytes) than its committed length %d" %
                                         (self.path, st.st_size, committed))
            f.seek(self.offset)
            buf = f.read(committed - self.offset)
        records = list(parse_blocks(buf))
        self.offset = committed
        return records


def read_results(path: str, committed: int) -> Dict[int, Record]:
    """Every committed record of a results file, by index."""
    return {r.index: r for r in ResultsReader(path).read(committed)}


def decode(data: bytes) -> Any:
    """A result as the Python bridge tagged it: N None, S str, B bytes,
    P a pickle (the bridge's helper.py writes them, and has its own
    decode() for the save callback)."""
    tag, body = data[:1], data[1:]
    if tag == b"N":
        return None
    if tag == b"S":
        return body.decode("utf-8", "surrogatepass")
    if tag == b"B":
        return bytes(body)
    if tag == b"P":
        return pickle.loads(body)
    raise ResultsFormatError("result with unknown tag %r (not written by mplock's Python bridge?)" % tag)


def split_error(message: bytes) -> Tuple[Optional[str], Optional[str], str]:
    """An item error's message: (module, qualname, traceback text) when it
    has the bridge's "<module>:<qualname>\\n<traceback>" form, else
    (None, None, text)."""
    text = message.decode("utf-8", "replace")
    first, sep, rest = text.partition("\n")
    module, colon, qualname = first.partition(":")
    if sep and colon and module and qualname and " " not in first:
        return module, qualname, rest
    return None, None, text
