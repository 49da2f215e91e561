"""The project's error type for user mistakes (bad file, bad config, bad data).

The CLI and the stage entry points print a ``PipelineError`` as one line and exit 1;
anything else is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """A user-facing error: the message names the file, line or key and what is wrong."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so ``finally`` blocks and context managers
    clean up (temporary outputs removed, previous outputs intact) as on Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


def _redeliver_swallowed_signal(unraisable) -> None:
    """``sys.unraisablehook``: a KeyboardInterrupt (Ctrl-C) or Terminated raised while Python ran a
    finalizer (a weakref callback, ``__del__``) cannot propagate and would be lost, so the run would
    go on; send the signal again a moment later, when the program's own code is running. Anything
    else goes to the default hook."""
    import os
    import signal
    import sys
    import threading

    if isinstance(unraisable.exc_value, KeyboardInterrupt):  # SIGINT, or Terminated (SIGTERM/SIGHUP)
        signum = getattr(unraisable.exc_value, "signum", signal.SIGINT)
        timer = threading.Timer(0.01, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()
        return
    sys.__unraisablehook__(unraisable)


class DeferredTermination:
    """While active, SIGTERM and SIGHUP only set ``signum`` instead of stopping the program, so a
    training loop can finish its step, write a checkpoint and then stop (``raise_if_requested``).
    Main thread only (Python signal handlers run there)."""

    def __init__(self):
        self.signum: int | None = None

    def __enter__(self) -> "DeferredTermination":
        import signal

        self._old = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
        for sig in self._old:
            signal.signal(sig, self._record)
        return self

    def _record(self, signum, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        import signal

        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def raise_if_requested(self) -> None:
        if self.signum is not None:
            raise Terminated(self.signum)


def is_disk_full(e: BaseException) -> bool:
    """An error of a full disk or quota, whether raised by Python (ENOSPC, EDQUOT, EFBIG) or by a
    library that wraps it in its own message (h5py, safetensors, torch.save)."""
    import errno

    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    text = str(e)
    return "No space left on device" in text or "os error 28" in text or "errno = 28" in text


def os_error_line(e: OSError) -> str:
    """``path: reason`` (both paths of a rename) for an OSError, in one line."""
    names = [str(n) for n in (e.filename, e.filename2) if n is not None]
    reason = e.strerror or str(e) or type(e).__name__
    return f"{' -> '.join(names)}: {reason}" if names else reason


def run_main(main, argv=None) -> None:
    """Run a ``main(argv)`` entry point: a PipelineError, a full disk or a file-system refusal
    (OSError) anywhere becomes one line on stderr and exit 1; SIGINT, SIGTERM and SIGHUP stop it
    cleanly with one line and exit 128 +
    the signal number (130, 143, 129)."""
    import signal
    import sys

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)
    # why: a shell without job control starts background commands with SIGINT ignored, and Python
    # then leaves it ignored; `kill -INT` (or the launcher passing Ctrl-C on) must stop a run anyway
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.unraisablehook = _redeliver_swallowed_signal
    try:
        code = main(argv)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # the work is done and written: a late
            signal.signal(sig, signal.SIG_IGN)  # signal must not turn a complete run into exit 143
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:
        if is_disk_full(e):
            where = getattr(e, "filename", None)
            print(f"error: {where + ': ' if where else ''}no space left on the device", file=sys.stderr)
            sys.exit(1)
        if not isinstance(e, OSError):
            raise
        # the file system refused (read-only, permission, a parent that is a file, a name too long)
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(
            "interrupted" if signum == signal.SIGINT else f"terminated ({signal.Signals(signum).name})", file=sys.stderr
        )
        sys.exit(128 + signum)
    sys.exit(code or 0)
