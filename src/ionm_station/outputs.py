"""Output files that never destroy anything: checked before the work, written atomically.

Every file the station writes on request (``export``'s EDF+, ``analyze``'s JSON and clean EDF,
``run --json``, ``recover``'s backup, the emulator's ``--stats``, the window's settings) goes
through this module:

* :func:`check_outputs` runs before any input is read. It refuses an output that is one of the
  inputs (the same path written another way, through a symbolic link or a hard link), two
  outputs that are the same file, an output that is a directory or whose folder does not exist
  or cannot be written, and an output that already exists — unless ``force`` (``--force``)
  allows replacing it; a recording (``keep``) is never replaced.
* :func:`atomic_output` gives the writer a temporary file beside the target (same folder, so
  the rename is atomic; hidden name ``.NAME.XXXXXXXX.partial``). On success the file is
  fsynced and renamed onto the target; on any error, Ctrl-C or SIGTERM it is removed. The
  final name therefore holds either nothing (or what it held before) or the complete file; a
  SIGKILL can leave only the hidden temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path

from ionm_station.errors import IonmError

#: Suffix of the temporary files written beside a target.
PARTIAL_SUFFIX = ".partial"


class OutputError(IonmError):
    """An output path that would destroy data or cannot be written; one line naming it."""


def _same_file(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` name the same file (relative paths, symbolic and hard links)."""
    with contextlib.suppress(OSError):
        if os.path.samefile(a, b):
            return True
    return a.resolve() == b.resolve()


def _where(option: str, path: Path) -> str:
    """How a message names an output: ``--edf out.edf``, or the path alone."""
    return f"{option} {path}" if option else str(path)


def check_outputs(outputs: Mapping[str, str | Path | None],
                  inputs: Iterable[str | Path | None] = (), force: bool = False,
                  keep: Collection[str] = ()) -> None:
    """Refuse, before any work, every output that would destroy data or cannot be written.

    Args:
        outputs: option name (e.g. ``"--edf"``, used in messages; may be empty) → output path
            (None: not asked for).
        inputs: the files the command reads (None entries are skipped).
        force: an existing output may be replaced (``--force``).
        keep: options whose existing file is refused even with ``force`` (recordings).

    Raises:
        OutputError: naming the option, the path and the problem.
    """
    given = {opt: Path(p) for opt, p in outputs.items() if p is not None}
    read = [Path(p) for p in inputs if p is not None]
    for option, path in given.items():  # the worst first: an output that would destroy an input
        for source in read:
            if _same_file(path, source):
                raise OutputError(f"{_where(option, path)}: is the input file {source}; choose "
                                  "another name (an input is never overwritten)")
    seen: list[tuple[str, Path]] = []
    for option, path in given.items():
        where = _where(option, path)
        for other, earlier in seen:
            if _same_file(path, earlier):
                raise OutputError(f"{where}: is also the output of {other}; give each output "
                                  "its own name")
        seen.append((option, path))
        if path.is_dir():
            raise OutputError(f"{where}: is a directory")
        folder = path.resolve().parent
        if not folder.is_dir():
            raise OutputError(f"{where}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{where}: cannot write in folder {folder} (permission denied)")
        if path.exists() or path.is_symlink():
            if option in keep:
                raise OutputError(f"{where}: file exists (a recording is never replaced; "
                                  "choose a new name)")
            if not force:
                raise OutputError(f"{where}: file exists (use --force to replace it)")


def existing_files(*names: str | Path | None) -> list[Path]:
    """The names that are files on disk (settings given as paths, not shipped names): inputs
    for :func:`check_outputs`."""
    return [Path(n) for n in names if n is not None and Path(n).is_file()]


def _temporary_beside(path: Path) -> Path:
    """Create an empty, hidden temporary file in ``path``'s folder (mode from the umask)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def _fsync(path: Path, directory: bool = False) -> None:
    """Make ``path`` (a file, or a directory's entries) durable on disk."""
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError:
        if not directory:  # some file systems cannot sync a directory; the file itself must be
            raise
    finally:
        os.close(fd)


def _commit(tmp: Path, path: Path, replace: bool) -> None:
    """Give ``tmp`` the name ``path``: a rename, or (not ``replace``) a hard link that fails if
    ``path`` appeared meanwhile."""
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputError(f"{path}: file exists (left alone; use --force to replace it)") from None
    except OSError:  # a file system without hard links: rename, after a last look
        if path.exists() or path.is_symlink():
            raise OutputError(f"{path}: file exists (left alone; use --force to replace "
                              "it)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_output(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """Write ``path`` all at once: yields a temporary file beside it to write; on success it is
    fsynced and renamed to ``path`` (an existing file is replaced only with ``replace``); on any
    exception (Ctrl-C included) it is removed and ``path`` is untouched.

    Raises:
        OutputError: ``path`` exists and ``replace`` is False.
        OSError: the folder cannot be written.
    """
    path = Path(path)
    tmp = _temporary_beside(path)
    try:
        yield tmp
        _fsync(tmp)
        _commit(tmp, path, replace)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.resolve().parent, directory=True)


def write_text(path: str | Path, text: str, replace: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_output`)."""
    with atomic_output(path, replace) as tmp:
        tmp.write_text(text, encoding="utf-8")
