# SPDX-License-Identifier: MIT
"""mplock: crash-safe, resumable batch jobs run by mplockd.

- The mp_lock-compatible API: mp_lock, mp_lock_batch, mp_lock_value
  (mp_lock_values), is_mp_lock_completed, InvalidArgumentsError; a script
  written for mp_lock changes its import line only.
- mplock.map(func, items, ...): Pool.imap over an mplockd job. It is not
  in __all__, so that `from mplock import *` leaves the built-in map alone.
- mplock.Client: a Varlink client for every method of mplockd.

See docs/python.md."""

from .api import InvalidArgumentsError, is_mp_lock_completed, map, mp_lock, mp_lock_batch, mp_lock_value, mp_lock_values
from .client import (Client, InternalError, InvalidParameter, Job, JobActive, JobNotActive, JobNotPaused,
                     MplockError, NoSuchJob, NothingToRetry, PermissionDenied, ResultsUnavailable, ShuttingDown,
                     StorageError, SubmitFailed, TooManyJobs)

__all__ = ["Client", "Job", "MplockError", "NoSuchJob", "PermissionDenied", "InvalidParameter", "JobNotActive",
           "JobActive", "JobNotPaused", "NothingToRetry", "TooManyJobs", "ResultsUnavailable", "SubmitFailed",
           "StorageError", "ShuttingDown", "InternalError",
           "mp_lock", "mp_lock_batch", "mp_lock_value", "mp_lock_values", "is_mp_lock_completed",
           "InvalidArgumentsError"]
