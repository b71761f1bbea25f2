"""Pinned weight files on disk: found in installed packages, joined atomically, SHA-256 checked.

The building blocks of :mod:`voiceagent.services.local.weights` (public for tests and tools).
Assembly writes a temp file in the destination folder, fsyncs, verifies the hash and renames,
so a crash or a bad part never leaves a partial file as the cached model. A sidecar
(``<file>.verified.json``: size, mtime, sha256) avoids re-hashing hundreds of MB at each start.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from loguru import logger

from voiceagent.services.local.weight_packages import OFFLINE_EXTRA, PackagedFile

__all__ = [
    "WeightsError",
    "assemble_parts",
    "locate",
    "logged_error",
    "missing_message",
    "missing_modules",
    "verify_pinned",
]

_CHUNK = 4 * 1024 * 1024


class WeightsError(RuntimeError):
    """Model weights are missing, overridden with a bad path, or fail their pinned SHA-256."""


def logged_error(message: str) -> WeightsError:
    """A :class:`WeightsError` for ``message``, logged once at error level."""
    logger.error(message)
    return WeightsError(message)


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The packages (import names) whose distribution is not installed (nothing is imported)."""
    missing = []
    for module in modules:
        try:
            importlib.metadata.distribution(module.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            missing.append(module)
    return missing


def missing_message(what: str, modules: Sequence[str], install: str) -> str:
    """What is missing for ``what`` and the command installing it."""
    dists = [m.replace("_", "-") for m in modules]
    names = (
        ", ".join(dists) if len(dists) <= 4 else f"{dists[0]} … {dists[-1]} ({len(dists)} packages)"
    )
    return f"{what} weights need the package(s) {names}, which are not installed: {install}"


def locate(item: PackagedFile, *, install: str = OFFLINE_EXTRA) -> Path:
    """Find ``item`` in its installed distribution's file list, without importing the package.

    The carriers are third-party packages: their ``RECORD`` (``importlib.metadata``) says where
    their files are, so none of their code runs. A glob may only be in the last path part.

    Raises:
        WeightsError: naming the pip package (and how to install it) when it is missing, or
            when its file list lacks ``item`` (or, for a glob, matches other than one file).
    """
    try:
        dist = importlib.metadata.distribution(item.dist)
    except importlib.metadata.PackageNotFoundError:
        raise logged_error(missing_message(item.module, [item.module], install)) from None
    wanted = PurePosixPath(item.module, item.relpath)
    files = [PurePosixPath(str(f)) for f in dist.files or ()]
    if any(ch in wanted.name for ch in "*?["):
        found = sorted(
            f for f in files if f.parent == wanted.parent and fnmatchcase(f.name, wanted.name)
        )
        if len(found) != 1:
            raise logged_error(
                f"package {item.dist} is installed but holds {len(found)} files matching "
                f"{item.relpath} (expected one); reinstall it: {install}"
            )
        wanted = found[0]
    elif wanted not in files and not any(wanted in f.parents for f in files):
        raise _lacks(item, install)  # neither a file nor a folder of the package
    path = Path(str(dist.locate_file(str(wanted))))
    if not path.exists():  # listed, but deleted since the install
        raise _lacks(item, install)
    return path


def _lacks(item: PackagedFile, install: str) -> WeightsError:
    return logged_error(
        f"package {item.dist} is installed but lacks {item.relpath}; reinstall it: {install}"
    )


def assemble_parts(parts: Sequence[Path], dest: Path, expected_sha256: str) -> Path:
    """Join ``parts`` in order into ``dest``, atomically, and check the pinned SHA-256.

    A ``dest`` already verified (sidecar matches its size and mtime) is returned at once; an
    existing ``dest`` without a valid sidecar is re-hashed and rebuilt when it does not match.

    Raises:
        WeightsError: on a hash mismatch (nothing is left at ``dest``), an unreadable part or
            too little disk space.
    """
    expected = expected_sha256.lower()
    record = _sidecar(dest)
    if dest.is_file():
        if _recorded_ok(record, dest, expected):
            return dest
        if _sha256_file(dest) == expected:
            _write_record(record, dest, expected)
            return dest
        logger.warning(f"cached {dest} does not match its pinned SHA-256: rebuilding it")
        dest.unlink(missing_ok=True)
        record.unlink(missing_ok=True)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(dest)
        total = sum(p.stat().st_size for p in parts)
        free = shutil.disk_usage(dest.parent).free
    except OSError as e:
        raise logged_error(f"cannot assemble {dest}: {e}") from e
    if free < total + 16 * 1024 * 1024:
        raise logged_error(
            f"not enough disk space in {dest.parent} to assemble {dest.name}: "
            f"{total / 1e6:.0f} MB needed, {free / 1e6:.0f} MB free"
        )
    logger.info(f"assembling {dest.name} from {len(parts)} part(s) ({total / 1e6:.0f} MB)")
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(
        dir=dest.parent, prefix=f".{dest.name}.{os.getpid()}.", suffix=".tmp"
    )
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected:
            raise logged_error(
                f"{dest.name} assembled from {', '.join(str(p) for p in parts)} has SHA-256 "
                f"{actual}, expected {expected}: the weight packages are not the pinned versions "
                "or are damaged; reinstall them"
            )
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
        _write_record(record, dest, expected)
    except OSError as e:
        raise logged_error(f"could not assemble {dest}: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def verify_pinned(path: Path, expected_sha256: str, *, record: Path, install: str) -> None:
    """Check a packaged file against its pinned SHA-256, remembering success in ``record``.

    Raises:
        WeightsError: when the file does not match.
    """
    expected = expected_sha256.lower()
    if _recorded_ok(record, path, expected):
        return
    actual = _sha256_file(path)
    if actual != expected:
        raise logged_error(
            f"{path} has SHA-256 {actual}, expected {expected}: "
            f"not the pinned weights; reinstall them: {install}"
        )
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        _write_record(record, path, expected)
    except OSError as e:
        logger.warning(f"cannot remember the verified hash of {path} in {record}: {e}")


# --- helpers -------------------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _recorded_ok(record: Path, path: Path, expected: str) -> bool:
    try:
        data = json.loads(record.read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and data.get("sha256") == expected
        and data.get("size") == st.st_size
        and data.get("mtime_ns") == st.st_mtime_ns
        and data.get("path") == str(path)
    )


def _write_record(record: Path, path: Path, sha256: str) -> None:
    st = path.stat()
    body = json.dumps(
        {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
    )
    tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
    tmp.write_text(body)
    os.replace(tmp, record)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_stale_temps(dest: Path) -> None:
    """Delete temp files of ``dest`` left by assemblers that died (their pid is gone)."""
    for tmp in dest.parent.glob(f".{dest.name}.*.tmp"):
        pid_text = tmp.name[len(dest.name) + 2 :].split(".", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            logger.info(f"removing {tmp}, left by an interrupted assembly")
            tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
