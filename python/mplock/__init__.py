# SPDX-License-Identifier: MIT
"""mplock: crash-safe, resumable batch jobs run by mplockd.

This package so far holds the Varlink client (mplock.Client); the mp_lock
compatible API comes on top of it (docs/python.md)."""

from .client import (Client, InternalError, InvalidParameter, Job, JobActive, JobNotActive, JobNotPaused,
                     MplockError, NoSuchJob, NothingToRetry, PermissionDenied, ResultsUnavailable, ShuttingDown,
                     StorageError, SubmitFailed, TooManyJobs)

__all__ = ["Client", "Job", "MplockError", "NoSuchJob", "PermissionDenied", "InvalidParameter", "JobNotActive",
           "JobActive", "JobNotPaused", "NothingToRetry", "TooManyJobs", "ResultsUnavailable", "SubmitFailed",
           "StorageError", "ShuttingDown", "InternalError"]
