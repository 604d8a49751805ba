"""`cluster up --disk-mb N`: each site's data directory on a filesystem of its own.

A drill's `disk-full` fault needs a disk it can fill without filling the
host's: a size-limited tmpfs per site (root only), mounted before the site's
first process starts and unmounted after its last one stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path


def mount_small_disk(data_dir: Path, size_mb: int) -> None:
    """A tmpfs of ``size_mb`` MiB at ``data_dir`` (left as it is when one is there)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(data_dir):
        return
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(data_dir)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def unmount_small_disk(data_dir: Path) -> None:
    """Undo mount_small_disk; its contents go with it (a tmpfs)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        if os.path.ismount(data_dir):
            subprocess.run(["umount", "-l", str(data_dir)], capture_output=True, timeout=30)


def wipe_dir(data_dir: Path) -> None:
    """Empty ``data_dir`` and keep it, with whatever is mounted on it.

    A rebuild must start from an empty directory, but removing the directory itself
    fails on a `--disk-mb` tmpfs (a mount point cannot be removed): the contents go,
    the mount stays, and the rebuilt site fills the same small disk.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    for entry in list(data_dir.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def disk_usage(path: Path) -> dict[str, int]:
    """Size and free bytes of the filesystem holding ``path``."""
    st = os.statvfs(path)
    return {"size": st.f_blocks * st.f_frsize, "free": st.f_bavail * st.f_frsize}
