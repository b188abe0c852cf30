"""The default limit backend: one API account's rules held for every process on this machine.

``airflow standalone``, a LocalExecutor, or several Celery workers on one host run each task in
a process of its own; an account's rules must hold across all of them with no configuration.
The state lives in a directory every worker on the host shares (:func:`limits_dir`), in files
named by a digest of the account (never a login or secret in a path), guarded by OS file locks
from the ``filelock`` library (``flock``: the kernel frees a lock when its holder dies, even by
SIGKILL, so a killed task never blocks an account):

* a concurrency cap (Browsee's one open request) is one lock file per slot, held for the request,
  kept open by the process (:class:`SlotFile`): taking a free slot is one ``flock`` call, since
  it sits between one answer and the next request of an API that allows one at a time;
* a request rate (OpenPanel's 100 per 10 s) and pauses (Retry-After, a used-up window the API
  reported) are one small JSON state file, read and rewritten under its lock in about a
  millisecond: our copy of the API's fixed window (:func:`.window_wait`, millisecond
  precision, ending one API window after its first answer) and the instant every caller
  may send again.

Why files and not SQLite: both need the same lock, but a file lock is one system call away and
its release on death is the kernel's, where SQLite adds a journal and busy-timeout polling.
Several machines need the Redis backend (:mod:`.redis_limits`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from airflow_provider_analytics_export.exceptions import LimitBackendError
from airflow_provider_analytics_export.transport.limits import (
    Exchange,
    RequestRules,
    Window,
    close_window_by,
    counted_in_window,
    explained_by_own_count,
    window_answered,
    window_wait,
)

#: Environment variable naming the directory that holds the limits (default: per user, in the temp dir).
LIMITS_DIR_ENV = "ANALYTICS_EXPORT_LIMITS_DIR"
#: Seconds between looks at a slot another process holds (threads of one process hand over at once).
POLL_SECONDS = 0.005


def limits_dir() -> Path:
    """The directory every worker on this host shares: ``$ANALYTICS_EXPORT_LIMITS_DIR``, else one per user.

    The default lives in the system temp dir, created private (0700); one another user created
    there first, or a symlink, is refused rather than trusted.
    """
    configured = os.environ.get(LIMITS_DIR_ENV, "").strip()
    if configured:
        path = Path(configured)
        _make(path)
        return path
    path = Path(tempfile.gettempdir()) / f"airflow-analytics-export-limits-{os.getuid()}"
    _make(path)
    info = path.lstat()
    if path.is_symlink() or info.st_uid != os.getuid():
        raise LimitBackendError(
            f"The limits directory {path} is not this user's own directory (a symlink or another "
            f"user's); set {LIMITS_DIR_ENV} to a directory every worker on this host can write."
        )
    return path


def _make(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise LimitBackendError(
            f"Cannot create the limits directory {path} ({type(exc).__name__}: {exc.strerror}); set "
            f"{LIMITS_DIR_ENV} to a directory every worker on this host can write."
        ) from None


class SlotFile:
    """One slot's lock file, held open by this process: taking or giving back the slot is one ``flock``.

    ``filelock`` opens, checks and closes the file on every acquire (about 0.2 ms and several
    system calls, each a chance for another thread to take the GIL), which the one request
    at a time of Browsee pays between every answer and the next request. ``flock`` belongs to
    the open file, so a forked child closes the copy it inherited (it must neither share its
    parent's lock nor keep it alive after the parent dies) and opens its own when it needs one.
    """

    _open: weakref.WeakSet[SlotFile] = weakref.WeakSet()

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._close: weakref.finalize[[int], SlotFile] | None = None  # closes the file with this object
        SlotFile._open.add(self)

    def try_acquire(self) -> bool:
        """Take the lock if no process holds it; never waits."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._close = weakref.finalize(self, os.close, self._fd)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _forget_after_fork(self) -> None:
        if self._close is not None:
            self._close()  # this copy only: the parent's open file (and any lock on it) stays the parent's
        self._fd, self._close = None, None

    @classmethod
    def _after_fork_in_child(cls) -> None:
        for slot_file in list(cls._open):
            slot_file._forget_after_fork()


os.register_at_fork(after_in_child=SlotFile._after_fork_in_child)


@dataclass
class _State:
    """What the state file holds: our copy of the API's window, and the pause's end."""

    window: Window = field(default_factory=Window)
    paused_until: float = 0.0


class MachineLimit:
    """One API account's limit shared by every process on this machine; see the module docstring.

    :param account: who the API counts against (hashed into the file names).
    :param rules: the API's rules for one account.
    :param directory: where the state lives (:func:`limits_dir`).
    :param where: the connection, for error messages.
    :param clock: wall-clock seconds (every process of the host reads the same clock).
    """

    def __init__(
        self,
        account: str,
        rules: RequestRules,
        directory: Path,
        where: str = "limit",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rules = rules
        self.max_calls, self.period = rules.max_calls, rules.per_seconds
        self._clock, self._sleep = clock, sleep
        stem = str(directory / hashlib.sha256(account.encode()).hexdigest()[:32])
        slots = rules.max_in_flight or 0
        self._in_process = threading.BoundedSemaphore(slots) if slots else None
        self._slot_files = [SlotFile(f"{stem}.slot{i}.lock") for i in range(slots)]
        self._held: set[int] = set()
        self._held_lock = threading.Lock()
        self._state_path = Path(f"{stem}.state")
        self._state_file_lock = FileLock(f"{stem}.state.lock", thread_local=False)
        self._state_thread_lock = threading.Lock()
        try:
            with self._state_file_lock:
                pass
        except OSError as exc:
            raise LimitBackendError(
                f"{where}: the limits directory {directory} is not writable ({type(exc).__name__}: "
                f"{exc.strerror}); set {LIMITS_DIR_ENV} to a directory every worker on this host can write."
            ) from None

    @contextmanager
    def slot(self) -> Iterator[Exchange]:
        """Hold a request slot (a file lock, if the account caps open requests) for one exchange."""
        index = self._take_slot() if self._in_process is not None else None
        try:
            opened = self._wait_for_rate()
            with Exchange(None if opened is None else lambda: self._answered(opened)) as exchange:
                yield exchange
        finally:
            if index is not None:
                self._give_back(index)

    def pause(self, seconds: float) -> None:
        """Make every caller in every process of this machine wait ``seconds`` from now."""
        with self._state() as state:
            self._pause(state, self._clock() + seconds)

    def window_used_up(self, seconds: float, remaining: float | None = None) -> None:
        """Pause until the API's reset, unless this machine's own sends explain its report."""
        with self._state() as state:
            now = self._clock()
            sent = counted_in_window(state.window, now, self.rules.per_seconds or 0.0)
            if not explained_by_own_count(sent, self.rules, remaining):
                self._pause(state, now + seconds)

    def _pause(self, state: _State, until: float) -> None:
        """Nobody sends before ``until``, when the API's window is over: ours closes by then too."""
        state.paused_until = max(state.paused_until, until)
        if self.rules.max_calls is not None and self.rules.per_seconds is not None:
            close_window_by(state.window, until, self.rules.max_calls, self.rules.per_seconds)

    def _take_slot(self) -> int:
        """A free slot lock: threads of this process wait on the semaphore, processes poll the files."""
        assert self._in_process is not None
        self._in_process.acquire()
        try:
            while True:
                with self._held_lock:
                    for index, lock in enumerate(self._slot_files):
                        if index in self._held or not lock.try_acquire():
                            continue  # another thread or process holds it
                        self._held.add(index)
                        return index
                self._sleep(POLL_SECONDS)
        except BaseException:
            self._in_process.release()
            raise

    def _give_back(self, index: int) -> None:
        with self._held_lock:
            self._slot_files[index].release()
            self._held.discard(index)
        assert self._in_process is not None
        self._in_process.release()

    def _wait_for_rate(self) -> float | None:
        """Wait out a pause and, under a rate rule, for room in the window, which then counts this send.

        Returns the window's id (its first send) while it waits for its first answer.
        """
        max_calls, per_seconds = self.rules.max_calls, self.rules.per_seconds
        while True:
            if max_calls is None or per_seconds is None:
                # No window to update: a lock-free read (the file is only ever replaced whole).
                wait = self._read().paused_until - self._clock()
                opened = None
            else:
                with self._state() as state:
                    now = self._clock()
                    wait = state.paused_until - now
                    if wait <= 0:
                        wait = window_wait(state.window, now, max_calls, per_seconds)
                    opened = None if state.window.ends else state.window.start
            if wait <= 0:
                return opened
            self._sleep(wait)

    def _answered(self, opened: float) -> None:
        with self._state() as state:
            window_answered(state.window, opened, self._clock(), self.rules.per_seconds or 0.0)

    @contextmanager
    def _state(self) -> Iterator[_State]:
        """The state under the lock (this process's threads, then other processes); saved after."""
        with self._state_thread_lock, self._state_file_lock:
            state = self._read()
            window = state.window
            before = (window.start, window.count, window.ends, state.paused_until)
            yield state
            if (window.start, window.count, window.ends, state.paused_until) != before:
                scratch = self._state_path.with_suffix(".tmp")
                saved = {
                    "start": window.start,
                    "count": window.count,
                    "ends": window.ends,
                    "paused_until": state.paused_until,
                }
                scratch.write_text(json.dumps(saved))
                os.replace(scratch, self._state_path)  # readers see the old file or the new, never half

    def _read(self) -> _State:
        try:
            raw = json.loads(self._state_path.read_text())
            window = Window(float(raw["start"]), int(raw["count"]), float(raw["ends"]))
            return _State(window, float(raw["paused_until"]))
        except (OSError, ValueError, KeyError, TypeError):
            return _State()  # none yet (or unreadable): nothing sent, no pause
