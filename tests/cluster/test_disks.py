"""A rebuild wipes the burned site's data directory, which under `cluster up --disk-mb`
is a tmpfs mount point: it must come out empty and still mounted (before this, the
rebuild tried to remove the mount point itself and failed with FileExistsError)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from outlast.cluster.disks import mount_small_disk, unmount_small_disk, wipe_dir


def _fill(root: Path) -> None:
    (root / "nats-1" / "jetstream").mkdir(parents=True)
    (root / "nats-1" / "jetstream" / "1.blk").write_bytes(b"x" * 1024)
    (root / "view.sqlite").write_bytes(b"y" * 10)
    (root / "link").symlink_to(root / "view.sqlite")


def test_wipe_dir_empties_a_plain_directory(tmp_path: Path) -> None:
    data = tmp_path / "site"
    data.mkdir()
    _fill(data)
    wipe_dir(data)
    assert data.is_dir() and list(data.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_wipe_dir_keeps_a_small_disk_mounted(tmp_path: Path) -> None:
    data = tmp_path / "site"
    mount_small_disk(data, 4)
    try:
        _fill(data)
        wipe_dir(data)
        assert os.path.ismount(data)
        assert list(data.iterdir()) == []
        # The same small disk is used again by the rebuilt site.
        (data / "again").write_bytes(b"z")
    finally:
        unmount_small_disk(data)
    assert not os.path.ismount(data)
