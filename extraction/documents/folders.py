"""Walking a folder of documents: the one walker that batch and indexing share.

Supported files only, sorted by relative path; include/exclude globs; symbolic links are
followed but every folder is entered once. What cannot be read (broken links, loops,
permissions) is reported, not raised, so one bad entry never stops a walk of thousands.
"""

from __future__ import annotations

import errno
import fnmatch
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extraction.documents import loading
from extraction.errors import DocumentError

INDEX_FOLDER = ".matextract-index"  # where 'matextract index build FOLDER' writes by default
SKIP_DIRS = {INDEX_FOLDER, ".git", "__pycache__"}  # never entered, whatever the patterns


@dataclass
class Walk:
    """What a walk found: the files to read, what could not be read, and what was left out."""

    files: list[tuple[str, str]] = field(default_factory=list)  # (absolute path, display path)
    failures: list[dict[str, Any]] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)  # reason -> count


def failure(file: str, reason: str, hint: str = "", *, stage: str) -> dict[str, Any]:
    """One problem with one file, as batch writes it to its errors file."""
    return {"file": file, "reason": reason, "hint": hint, "stage": stage}


def _matches(rel: str, patterns: Iterable[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        variants = (pattern, pattern[3:]) if pattern.startswith("**/") else (pattern,)
        if any(fnmatch.fnmatchcase(rel, v) or fnmatch.fnmatchcase(name, v) for v in variants):
            return True
    return False


def stat_problem(exc: OSError) -> tuple[str, str]:
    """(reason, hint) for a file or folder the OS refuses to stat, list or read."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop", "the link points (indirectly) at itself; remove it"
    if exc.errno == errno.ENOENT:
        return "broken symbolic link (target missing)", "remove the link or restore its target"
    if exc.errno == errno.EACCES:
        return "permission denied", "make it readable (chmod u+r) or exclude it"
    return f"cannot read: {exc.strerror or exc}", "check that the disk or share is reachable"


def walk_folder(folder: Path, *, include: Iterable[str] = (), exclude: Iterable[str] = (),
                skip: Callable[[Path], bool] = lambda path: False) -> Walk:
    """Supported files under ``folder``, sorted by relative path. Symbolic links are followed,
    but a folder is entered once: a link back to an enclosing folder is reported as a loop."""
    include, exclude = tuple(include), tuple(exclude)
    if not folder.exists():
        raise DocumentError(folder, "folder not found",
                            hint=f"check the path (relative paths start at {Path.cwd()})")
    if not folder.is_dir():
        raise DocumentError(folder, "is not a folder",
                            hint="pass a folder; for single files use 'matextract extract'")
    walk = Walk()
    root = os.stat(folder)
    stack: list[tuple[Path, str, tuple[tuple[int, int], ...]]] = [
        (folder, "", ((root.st_dev, root.st_ino),))]
    entered = {(root.st_dev, root.st_ino)}
    found: list[tuple[str, str, str]] = []
    while stack:
        directory, rel, ancestry = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            reason, hint = stat_problem(exc)
            walk.failures.append(failure(str(directory), f"cannot list folder: {reason}", hint,
                                         stage="walk"))
            continue
        for entry in entries:
            path, child_rel = Path(entry.path), f"{rel}{entry.name}"
            try:
                info = os.stat(path)  # follows links; raises for loops and broken links
            except OSError as exc:
                reason, hint = stat_problem(exc)
                walk.failures.append(failure(str(path), reason, hint, stage="walk"))
                continue
            if os.path.isdir(path):
                identity = (info.st_dev, info.st_ino)
                if entry.name in SKIP_DIRS or _matches(child_rel, exclude):
                    walk.ignored["excluded folder"] += 1
                elif identity in ancestry:
                    walk.failures.append(failure(
                        str(path), "symbolic link loop: leads back to an enclosing folder",
                        "not followed; remove the link or exclude it", stage="walk"))
                elif identity in entered:
                    walk.ignored["folder reached again through a link"] += 1
                else:
                    entered.add(identity)
                    stack.append((path, f"{child_rel}/", (*ancestry, identity)))
                continue
            suffix = path.suffix.lower()
            if skip(path):
                continue
            if suffix not in loading.SUPPORTED_SUFFIXES:
                walk.ignored[f"unsupported {suffix or '(no extension)'}"] += 1
            elif _matches(child_rel, exclude) or (include and not _matches(child_rel, include)):
                walk.ignored["excluded by pattern"] += 1
            elif not os.path.isfile(path):  # a FIFO would block the reader forever
                walk.failures.append(failure(str(path), "not a regular file",
                                             "copy the content into a file", stage="walk"))
            else:
                found.append((child_rel, os.path.abspath(path), str(path)))
    walk.files = [(absolute, display) for _, absolute, display in sorted(found)]
    return walk
