# SPDX-License-Identifier: MIT
"""One progress bar on stderr for a job: tqdm's when it is installed, else
a plain line, redrawn in place on a terminal and printed once per update
otherwise (a log file then reads as a history). stdout is never touched."""

import sys
from typing import Any, Dict, Optional, TextIO


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return "%d:%02d:%02d" % (h, m, s) if h else "%d:%02d" % (m, s)


def describe(info: Dict[str, Any]) -> str:
    """"job 7: 40/100 items (40%), 12.3/s, ETA 0:05, 1 failed"."""
    total = info.get("items") or 0
    done = info.get("done") or 0
    pct = 100.0 * done / total if total else 100.0
    start, end = info.get("started_usec"), info.get("finished_usec")
    if start and end and end > start:
        # An ended job: its average rate and how long it took, not the
        # last seconds' rate (0) and an ETA.
        secs = (end - start) / 1e6
        text = "mplock job %s: %d/%d items (%.0f%%), %.1f/s, took %s" % (
            info.get("id", "?"), done, total, pct, done / secs, _duration(secs) if secs >= 1 else "%.2f s" % secs)
    else:
        text = "mplock job %s: %d/%d items (%.0f%%), %.1f/s, ETA %s" % (
            info.get("id", "?"), done, total, pct, info.get("rate") or 0.0, _duration(info.get("eta_seconds")))
    if info.get("failed"):
        text += ", %d failed" % info["failed"]
    if info.get("state") not in (None, "queued", "running"):
        text += " [%s]" % info["state"]
    return text


class PlainBar:
    """The bar without tqdm: one line, redrawn with \\r on a terminal."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.tty = stream.isatty()
        self.width = 0

    def update(self, info: Dict[str, Any]) -> None:
        text = describe(info)
        if self.tty:
            pad = " " * max(0, self.width - len(text))
            self.stream.write("\r" + text + pad)
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
        self.width = 0


class TqdmBar:
    """tqdm's bar, made at the first update (the total is known then)."""

    def __init__(self, tqdm, stream: TextIO):
        self.tqdm_class = tqdm
        self.stream = stream
        self.bar = None

    def update(self, info: Dict[str, Any]) -> None:
        total, done = info.get("items") or 0, info.get("done") or 0
        if self.bar is None:
            # initial: a resumed job starts where it was; tqdm's own rate
            # then counts this run's items only.
            self.bar = self.tqdm_class(total=total, initial=done, file=self.stream, unit="item",
                                       desc="mplock job %s" % info.get("id", "?"), dynamic_ncols=True)
        self.bar.update(done - self.bar.n)
        self.bar.set_postfix(failed=info.get("failed") or 0, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Progress:
    """progress(info) for Job.wait: draws info (a Job object of the
    interface) when enabled, nothing otherwise."""

    def __init__(self, enabled: bool = True, stream: Optional[TextIO] = None, use_tqdm: bool = True):
        self.enabled = enabled
        stream = stream or sys.stderr
        self.impl = None
        if enabled:
            tqdm = None
            if use_tqdm:
                try:
                    from tqdm import tqdm
                except ImportError:
                    tqdm = None
            self.impl = TqdmBar(tqdm, stream) if tqdm else PlainBar(stream)

    def __call__(self, info: Dict[str, Any]) -> None:
        if self.impl:
            self.impl.update(info)

    def close(self) -> None:
        if self.impl:
            self.impl.close()
