"""Engine processes die with the hub that started them.

A hub killed with SIGKILL runs no cleanup: without this, its forkserver, the pool's
workers and the demucs worker lived on (reparented to PID 1), each restart adding a new
set. Every engine process calls :func:`die_with_parent` first thing:

- on Linux the kernel's parent-death signal (``PR_SET_PDEATHSIG``) kills it the moment
  its parent thread exits: used where the parent is a single-threaded process (pool
  workers, whose parent is the forkserver);
- everywhere, a daemon thread checks every ``poll_s`` whether the process was
  reparented, and exits it: used for processes whose parent is a thread of the hub
  (the forkserver, the demucs worker), where the parent-death signal would fire when
  that one thread ends rather than the hub.

The forkserver gets it through its preload list (:mod:`stemhub.backends._forkserver_watch`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(*, kernel_signal: bool = False, poll_s: float = 0.5) -> None:
    """Make this process exit when the process that started it is gone.

    ``kernel_signal`` asks for Linux's parent-death signal as well (only safe when the
    parent is single-threaded: the signal follows the parent *thread*).
    """
    parent = os.getppid()
    if kernel_signal:
        _set_parent_death_signal()
    if parent == 1:
        # already orphaned between fork and here
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="stemhub-parent-watch", daemon=True).start()


__all__ = ["die_with_parent"]
