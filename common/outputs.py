"""Writing outputs without ever losing the user's data.

Every output goes to a temporary sibling first and is renamed into place only when it is complete. Inside a run
(`output_run()`, which each Processing algorithm opens) a file that an output replaces is first moved aside, so a
run that fails, is canceled or is killed by SIGTERM/SIGINT puts everything back as it was: no partial output, no
lost file. A folder is never deleted: a file output that names a folder is refused, and a folder output must be new
or empty.

Temporary names are recognisably ours (`.<name>.<pid>.<random>.lmtmp<suffix>`), so the temporaries of an earlier
killed run are swept when the same output is written again.
"""
from __future__ import annotations

import contextvars
import errno
import fnmatch
import os
import re
import secrets
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import InputError

TEMP_TAG = "lmtmp"    # marks a temporary output being written
BACKUP_TAG = "lmbak"  # marks a replaced output kept until its run succeeds
SIDECARS = (".aux.xml", ".ovr")  # GDAL's files that belong to a raster
SHAPEFILE_PARTS = (".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx")  # files that belong to a .shp
_OURS = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.(?:lmtmp|lmbak)")
_LEGACY = re.compile(r"^\.(?P<stem>.+)\.[a-z0-9_]{8}\.tmp")  # mkstemp names of versions before 0.3
_STARTED = time.time()


# --------------------------------------------------------------------------------------------- temp registry
# Temporaries alive in this process, for the signal handler: a killed run removes them on its way out.
_LIVE: set[Path] = set()
_LIVE_LOCK = threading.Lock()


def _temp_name(path: Path, tag: str, suffix: str = "") -> Path:
    return path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.{tag}{suffix}")


def _remove_path(path: Path) -> None:
    """Remove a temporary file or a temporary folder we made (never called on a user's path)."""
    try:
        if path.is_dir() and not path.is_symlink():
            for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
            path.rmdir()
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    for part in _parts(path)[1:]:
        part.unlink(missing_ok=True)


def _parts(path: Path) -> list[Path]:
    """The file and the files that belong to it (GDAL sidecars; a shapefile's other parts), in a fixed order."""
    parts = [path] + [Path(str(path) + s) for s in SIDECARS]
    if path.suffix.lower() == ".shp":
        parts += [path.with_suffix(s) for s in SHAPEFILE_PARTS]
    return parts


def _move_parts(source: Path, target: Path) -> None:
    """Rename a file and each of its parts that exists onto the matching names of `target`."""
    for src, dst in zip(_parts(source), _parts(target)):
        if src.exists():
            os.replace(src, dst)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":  # Windows has no harmless probe (os.kill would end that process): age decides there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of `path` left by an earlier run that was killed; returns what was removed.

    Only names we make are touched, and only when the process that made them is gone (or, for the naming of
    older versions, when they predate this process).
    """
    path = Path(path)
    removed = []
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return removed
    for p in siblings:
        m = _OURS.match(p.name)
        if m and _names(m.group("stem"), path):
            stale = not _pid_alive(int(m.group("pid"))) or (os.name != "posix" and _older_than(p, 86400.0))
        else:
            m = _LEGACY.match(p.name)
            stale = bool(m) and _names(m.group("stem"), path) and _older_than_run(p)
        if stale:
            _remove_path(p)
            removed.append(p)
    return removed


def _names(stem: str, path: Path) -> bool:
    """True when a temporary's stem is that of `path` (or of a temporary of it: COG staging files)."""
    stem = stem.lstrip(".")
    return stem == path.stem or stem.startswith(path.stem + ".")


def _older_than(p: Path, seconds: float) -> bool:
    try:
        return p.stat().st_mtime < time.time() - seconds
    except OSError:
        return False


def _older_than_run(p: Path) -> bool:
    try:
        return p.stat().st_mtime < _STARTED
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------- output runs
@dataclass
class _Run:
    """Outputs renamed into place during one run, with the files they replaced (moved aside, not deleted)."""

    placed: list[tuple[Path, Path | None]] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)  # made by the run for its outputs; removed if left empty

    def undo(self) -> None:
        for path, backup in reversed(self.placed):
            _remove_path(path)
            if backup is not None:
                _restore(backup, path)
        self.placed.clear()
        for folder in reversed(self.folders):
            try:
                folder.rmdir()  # only when empty: never anything someone else put there
            except OSError:
                pass
        self.folders.clear()

    def commit(self) -> None:
        for _, backup in self.placed:
            if backup is not None:
                _remove_path(backup)
        self.placed.clear()
        self.folders.clear()


def make_folder(path: str | os.PathLike) -> Path:
    """Create a folder (and its parents) for outputs; a run that fails removes the ones it made, if left empty."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    run = _RUN.get()
    if run is not None:
        run.folders.extend(reversed(missing))
    return path


_RUN: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("landslide_mapper_output_run", default=None)
_RUNS_OBJ: dict[int, _Run] = {}


def _restore(backup: Path, path: Path) -> None:
    _move_parts(backup, path)


@contextmanager
def output_run() -> Iterator[None]:
    """All outputs written inside appear together or not at all: on any error, cancel or signal the outputs
    placed so far are removed and the files they replaced come back."""
    if _RUN.get() is not None:  # nested (an algorithm calling another): the outer run decides
        yield
        return
    run = _Run()
    token = _RUN.set(run)
    with _LIVE_LOCK:
        _RUNS_OBJ[id(run)] = run
    try:
        with _signals_cleaned():
            yield
    except BaseException:
        run.undo()
        raise
    else:
        run.commit()
    finally:
        _RUN.reset(token)
        with _LIVE_LOCK:
            _RUNS_OBJ.pop(id(run), None)


# ------------------------------------------------------------------------------------------------- signals
_HANDLED = (signal.SIGTERM, signal.SIGINT) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())
_SIGNAL_DEPTH = 0


def clean_up_everything() -> None:
    """Remove every live temporary and undo every unfinished run of this process (on SIGTERM/SIGINT)."""
    with _LIVE_LOCK:
        temps, runs = list(_LIVE), list(_RUNS_OBJ.values())
        _LIVE.clear()
    for p in temps:
        _remove_path(p)
    for run in runs:
        try:
            run.undo()
        except OSError:
            pass


def _on_signal(signum, frame):
    clean_up_everything()
    previous = _PREVIOUS.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    if signum == signal.SIGINT and previous == signal.default_int_handler:
        raise KeyboardInterrupt
    signal.signal(signum, signal.SIG_DFL if previous in (None, signal.SIG_DFL) else previous)
    os.kill(os.getpid(), signum)  # die of the same signal, as the process would have without us


_PREVIOUS: dict[int, object] = {}


@contextmanager
def _signals_cleaned() -> Iterator[None]:
    """While a run is open in the main thread, SIGTERM/SIGINT/SIGHUP first remove its temporaries and undo it.

    Signal handlers can only be set from the main thread (qgis_process, scripts); in QGIS's worker threads a
    closing QGIS cancels the task instead, which unwinds the run normally.
    """
    global _SIGNAL_DEPTH
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _SIGNAL_DEPTH == 0:
        for sig in _HANDLED:
            try:
                _PREVIOUS[sig] = signal.signal(sig, _on_signal)
            except (ValueError, OSError):
                pass
    _SIGNAL_DEPTH += 1
    try:
        yield
    finally:
        _SIGNAL_DEPTH -= 1
        if _SIGNAL_DEPTH == 0:
            for sig, previous in _PREVIOUS.items():
                try:
                    signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
                except (ValueError, OSError):
                    pass
            _PREVIOUS.clear()


# ------------------------------------------------------------------------------------------- atomic output
def temp_sibling(path: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh temporary name beside `path` (not created), registered for cleanup on a signal."""
    tmp = _temp_name(Path(path), TEMP_TAG, suffix)
    with _LIVE_LOCK:
        _LIVE.add(tmp)
    return tmp


def discard(tmp: Path) -> None:
    """Remove a temporary made by `temp_sibling` and forget it."""
    _remove_path(tmp)
    with _LIVE_LOCK:
        _LIVE.discard(tmp)


@dataclass(frozen=True)
class FolderKind:
    """What an output folder of ours holds: it may replace an earlier one only if it holds nothing else.

    `names`: glob patterns of every path it may hold, relative to it ("images/*.tif"); `more_names`, given the
    folder, adds the patterns its own marker file allows (e.g. the files of the layout an export says it used).
    """

    what: str                # e.g. "chip export"
    marker: str              # a file only this kind of folder has
    names: frozenset[str]
    more_names: Callable[[Path], Iterable[str]] | None = None

    def holds_only_ours(self, folder: Path, limit: int = 2_000_000) -> bool:
        if not (folder / self.marker).is_file():
            return False
        patterns = set(self.names) | set(self.more_names(folder) if self.more_names else ())
        for n, path in enumerate(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if n > limit or path.is_symlink() or not any(fnmatch.fnmatchcase(rel, p) for p in patterns):
                return False
        return True


@contextmanager
def atomic_output(path: str | os.PathLike, is_dir: bool = False, *, undo_with_run: bool = True,
                  kind: FolderKind | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it over `path` on success, delete it on any error.

    A file output never replaces a folder. A folder output replaces only an empty folder or an earlier output of
    the same `kind` that holds nothing else. Inside an `output_run()` whatever is replaced is moved aside until
    the run succeeds. `undo_with_run=False` is for by-products that must survive a failed run (a training
    checkpoint, a cache).
    """
    path = normalised(path)
    refuse_unsafe_target(path, is_dir, kind=kind)
    try:
        make_folder(path.parent)  # a failed run removes the folders it made, if left empty
    except OSError as exc:
        raise InputError(explain_os_error(exc, path)) from None
    sweep_stale_temporaries(path)
    tmp = temp_sibling(path, path.suffix)
    try:
        if is_dir:
            tmp.mkdir()
        yield tmp
        _place(tmp, path, is_dir, _RUN.get() if undo_with_run else None, kind)
    except OSError as exc:
        discard(tmp)
        full = exc.filename is None and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        if full or _names_temporary(exc, tmp) or _names_temporary(exc, path):  # a write of this output failed
            raise InputError(explain_os_error(exc, path)) from None
        raise
    except BaseException:
        discard(tmp)
        raise
    with _LIVE_LOCK:
        _LIVE.discard(tmp)


def _names_temporary(exc: OSError, path: Path) -> bool:
    """True when an OS error is about `path` or a file below it (the temporary of an output)."""
    names = [n for n in (exc.filename, getattr(exc, "filename2", None)) if n]
    return any(str(n).startswith(str(path)) for n in names)


def _place(tmp: Path, path: Path, is_dir: bool, run: _Run | None, kind: FolderKind | None) -> None:
    refuse_unsafe_target(path, is_dir, kind=kind)  # the target may have changed while we worked
    backup = None
    if is_dir:
        if path.exists() and not any(path.iterdir()):
            path.rmdir()  # rmdir fails rather than delete anything
        elif path.exists():  # an earlier output of the same kind, holding only what that output writes
            backup = _temp_name(path, BACKUP_TAG)
            os.replace(path, backup)
        os.replace(tmp, path)
    else:
        old = [p for p in _parts(path) if p.exists()]
        if old and run is not None:  # kept until the run succeeds; the old sidecars describe the old data
            backup = _temp_name(path, BACKUP_TAG, path.suffix)
            _move_parts(path, backup)
        else:
            for p in old[1:]:
                p.unlink()
        _move_parts(tmp, path)
    if run is not None:
        run.placed.append((path, backup))
    elif backup is not None:
        _remove_path(backup)


# ------------------------------------------------------------------------------------------- target checks
def refuse_unsafe_target(path: Path, is_dir: bool = False, parameter: str | None = None,
                         kind: FolderKind | None = None) -> None:
    """Refuse a file output that is a folder, and a folder output that is a file or a folder with contents (other
    than an earlier output of the same `kind`)."""
    who = f"The output {parameter} " if parameter else "The output "
    if not is_dir and path.is_dir():
        raise InputError(f"{who}'{path}' is a folder; give the name of a file inside it instead. Nothing was "
                         f"written and the folder was left as it is.")
    if is_dir and path.exists():
        if not path.is_dir():
            raise InputError(f"{who}folder '{path}' is an existing file; give the name of a new or empty folder.")
        if any(path.iterdir()) and not (kind is not None and kind.holds_only_ours(path)):
            earlier = f" or an earlier {kind.what}" if kind is not None else ""
            raise InputError(f"{who}folder '{path}' is not empty; choose a new or empty folder{earlier} so "
                             f"nothing in it is overwritten. Nothing was written.")


def check_output_writable(path: str | os.PathLike, parameter: str | None = None) -> None:
    """Refuse before any work an output whose folder cannot be created or written to."""
    path = Path(path).absolute()
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    who = f"output {parameter} ('{path}')" if parameter else f"output '{path}'"
    if not folder.is_dir():
        raise InputError(f"Cannot write the {who}: '{folder}' is a file, not a folder. Choose another location.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"Cannot write the {who}: the folder '{folder}' is not writable for this user. Choose a "
                         f"folder you can write to.")


def explain_os_error(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """A sentence a person can act on for a failed write or read."""
    where = path or exc.filename or "the output"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"Not enough space on the disk (or over the file-size limit) to write '{where}'; nothing was "
                f"written. Free some space or choose another folder, then run again.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"No permission to write '{where}'; nothing was written. Choose a folder you can write to."
    if exc.errno in (errno.ENOENT, errno.ENOTDIR) and path:
        return (f"Could not create '{where}': its folder '{Path(where).parent}' does not accept new files. Choose "
                f"an ordinary folder you can write to; nothing was written.")
    return f"Could not write '{where}' ({exc.strerror or exc}); nothing was written."


# ------------------------------------------------------------------------------- inputs vs outputs of a run
def _identity(path: Path) -> tuple:
    """What makes two names the same file: device and inode when it exists, else the normalised full path."""
    real = os.path.realpath(path)  # links followed, '..' applied even after folders that do not exist yet
    try:
        st = os.stat(real)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("name", os.path.normcase(real))


def normalised(path: str | os.PathLike) -> Path:
    """An absolute path with '..' and links resolved in its folder (the last part stays as named)."""
    path = Path(path)
    return Path(os.path.realpath(path.parent if str(path.parent) else ".")) / path.name


def check_run_paths(inputs: Iterable[tuple[str, str]],
                    outputs: Iterable[tuple[str, str, bool, FolderKind | None]],
                    side_files: Iterable[tuple[str, str, str]] = ()) -> None:
    """Refuse, before any work, outputs that are folders (for files), equal an input or equal each other.

    `inputs`: (parameter, path); `outputs`: (parameter, path, is_folder, kind of folder or None); `side_files`:
    (parameter, its output, a file written beside it, e.g. a report's HTML). Paths are compared by the file itself
    (symbolic links, '..', hard links, case on case-insensitive file systems). An existing file inside an input
    folder is refused too, and so is a side file that exists while its output does not (it is someone else's).
    """
    ins = [(p, Path(v)) for p, v in inputs if v]
    outs = [(p, Path(v), d, k) for p, v, d, k in outputs if v]
    seen: dict[tuple, str] = {}
    for parameter, path, is_dir, kind in outs:
        refuse_unsafe_target(normalised(path), is_dir, parameter, kind)
        check_output_writable(path, parameter)
        key = _identity(path)
        if key in seen:
            raise InputError(f"The outputs {seen[key]} and {parameter} are the same file '{path}'; give each "
                             f"output its own name. Nothing was written.")
        seen[key] = parameter
        _refuse_input_clash(parameter, path, key, ins)
        if is_dir and path.is_dir():
            for in_param, in_path in ins:
                if _inside(in_path, path):
                    raise InputError(f"The output folder {parameter} '{path}' holds the input {in_param} "
                                     f"('{in_path}'); writing the folder would replace it. Choose another "
                                     f"folder. Nothing was written.")
    for parameter, main, side in side_files:
        main, side = Path(main), Path(side)
        _refuse_input_clash(parameter, side, _identity(side), ins)
        if side.exists() and not main.exists():
            raise InputError(f"'{side}' already exists beside the output {parameter} ('{main.name}'), which would "
                             f"write its own '{side.name}' there. Move or rename that file, or choose another name "
                             f"for {parameter}. Nothing was written.")


def _refuse_input_clash(parameter: str, path: Path, key: tuple, ins: list[tuple[str, Path]]) -> None:
    for in_param, in_path in ins:
        if _identity(in_path) == key:
            raise InputError(f"The output {parameter} '{path}' is the same file as the input {in_param} "
                             f"('{in_path}'); writing it would destroy the input. Choose another output name. "
                             f"Nothing was written.")
        if in_path.is_dir() and os.path.lexists(path) and _inside(path, in_path):
            raise InputError(f"The output {parameter} '{path}' would replace a file inside the input folder "
                             f"{in_param} ('{in_path}'). Choose a name outside that folder. Nothing was written.")


def _inside(path: Path, folder: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, base]) == base and real != base
