"""Unit tests for configuration defaults, TOML loading and validation (outlast.config)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from outlast import config
from outlast.config import Config, ConfigError, listen_address


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "outlast.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Config:
    return config.load(write(tmp_path, text))


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value)


# --- defaults ---------------------------------------------------------------


def test_defaults_match_the_documentation() -> None:
    c = config.load(None)
    assert c.server.listen == "127.0.0.1:8008"
    assert c.server.data_dir == "./outlast-data"
    assert c.server.server_name == "localhost"
    assert c.registration.enabled is True
    assert c.limits.enabled is True  # rate limits on
    assert c.limits.rate_limit_per_second > 0 and c.limits.register_per_second > 0
    assert c.server.trusted_proxies == []
    assert c.media.max_thumbnail_pixels == 32_000_000
    assert c.embedded_nats is True
    assert c.data_path == Path("./outlast-data")
    assert c.view_path == Path("./outlast-data/view.sqlite")
    config.validate(c)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_text(tmp_path, "") == Config()


def test_listen_address_splits_host_and_port() -> None:
    assert listen_address(Config()) == ("127.0.0.1", 8008)
    c = Config()
    c.server.listen = "[::1]:9000"
    assert listen_address(c) == ("::1", 9000)


# --- loading ----------------------------------------------------------------


def test_toml_values_are_loaded(tmp_path: Path) -> None:
    c = load_text(
        tmp_path,
        """
        [server]
        server_name = "example.test"
        listen = "0.0.0.0:8448"
        data_dir = "/var/lib/outlast"

        [registration]
        enabled = false

        [limits]
        rate_limit_per_second = 5

        [log]
        nats_urls = ["nats://a:4222", "nats://b:4222"]
        partitions = 8
        replicas = 3

        [view]
        path = "/tmp/view.sqlite"
        """,
    )
    assert c.server.server_name == "example.test"
    assert listen_address(c) == ("0.0.0.0", 8448)
    assert c.registration.enabled is False
    assert c.limits.rate_limit_per_second == 5.0
    assert isinstance(c.limits.rate_limit_per_second, float)
    assert c.log.nats_urls == ["nats://a:4222", "nats://b:4222"]
    assert (c.log.partitions, c.log.replicas) == (8, 3)
    assert c.embedded_nats is False
    assert c.view_path == Path("/tmp/view.sqlite")
    assert c.server.site == "local"  # untouched keys keep defaults


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        config.load(tmp_path / "absent.toml")


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    load_error(tmp_path, "[server\n")


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    assert "server.listn" in load_error(tmp_path, '[server]\nlistn = "127.0.0.1:1"\n')


@pytest.mark.parametrize(
    "text",
    [
        "[serverz]\nx = 1\n",
        "server = 1\n",  # a section must be a table
        "[data_path]\nx = 1\n",  # a Config property, not a section
        "[embedded_nats]\nx = 1\n",
        "[__class__]\nx = 1\n",
    ],
)
def test_unknown_section_is_an_error(tmp_path: Path, text: str) -> None:
    load_error(tmp_path, text)


@pytest.mark.parametrize(
    "text",
    [
        '[registration]\nenabled = "yes"\n',
        "[registration]\nenabled = 1\n",
        '[log]\npartitions = "4"\n',
        "[log]\npartitions = true\n",
        "[log]\npartitions = 2.5\n",  # an int key must not silently truncate
        "[server]\nlisten = 8008\n",
        '[log]\nnats_urls = "nats://a:4222"\n',
        "[log]\nnats_urls = [1, 2]\n",
        "[limits]\nrate_limit_per_second = false\n",
    ],
)
def test_wrong_types_are_errors(tmp_path: Path, text: str) -> None:
    load_error(tmp_path, text)


# --- validate ---------------------------------------------------------------


@pytest.mark.parametrize("partitions", [1, 64])
def test_partition_bounds_are_inclusive(tmp_path: Path, partitions: int) -> None:
    assert load_text(tmp_path, f"[log]\npartitions = {partitions}\n").log.partitions == partitions


@pytest.mark.parametrize(
    "text",
    [
        "[log]\npartitions = 0\n",
        "[log]\npartitions = 65\n",
        "[log]\nreplicas = 2\n",
        "[log]\nreplicas = 0\n",
        '[server]\nlisten = "8008"\n',
        '[server]\nlisten = ":8008"\n',
        '[server]\nlisten = "localhost:http"\n',
        '[server]\nlisten = "localhost:"\n',
        "[push]\nprune_every = -1\n",
        "[push]\nprune_keep_unread = 0\n",
        "[push]\nprune_min_age_seconds = 100.0\nprune_max_age_seconds = 10.0\n",
    ],
)
def test_out_of_bounds_values_are_errors(tmp_path: Path, text: str) -> None:
    load_error(tmp_path, text)


@pytest.mark.parametrize("replicas", [1, 3, 5])
def test_odd_replica_counts_are_accepted(tmp_path: Path, replicas: int) -> None:
    assert load_text(tmp_path, f"[log]\nreplicas = {replicas}\n").log.replicas == replicas


# --- docs/config.md against the code ------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "config.md"


def _documented() -> dict[str, dict[str, str]]:
    """Section -> key -> default, as the tables of docs/config.md give them."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## `\[(\w+)\]`", line)
        if heading:
            current = sections.setdefault(heading.group(1), {})
        elif line.startswith("## "):
            current = None
        elif current is not None:
            row = re.match(r"^\| `(\w+)` \| `(.*?)` \|", line)
            if row:
                current[row.group(1)] = row.group(2)
    return sections


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, list)):
        return json.dumps(value)
    return repr(value)


def test_every_key_is_documented_with_its_default() -> None:
    documented = _documented()
    defaults = Config()
    for section in dataclasses.fields(defaults):
        values = dataclasses.asdict(getattr(defaults, section.name))
        assert section.name in documented, f"[{section.name}] missing from docs/config.md"
        assert set(documented[section.name]) == set(values), section.name
        for key, value in values.items():
            assert documented[section.name][key] == _toml(value), f"{section.name}.{key}"


def test_a_data_directory_with_its_own_file_is_configured_by_it(tmp_path: Path) -> None:
    import argparse

    (tmp_path / "outlast.toml").write_text(
        '[server]\nserver_name = "restored.example"\n\n[log]\npartitions = 3\n'
    )
    args = argparse.Namespace(config=None, data_dir=str(tmp_path))
    resolved = config.resolve_config(args)
    assert (resolved.server.server_name, resolved.log.partitions) == ("restored.example", 3)
    assert resolved.data_path == tmp_path
    # --config wins over the data directory's file.
    other = tmp_path / "other.toml"
    other.write_text("[log]\npartitions = 5\n")
    args = argparse.Namespace(config=str(other), data_dir=str(tmp_path))
    assert config.resolve_config(args).log.partitions == 5


# --- [view] backend ------------------------------------------------------------


def test_view_backend_defaults_to_a_sqlite_file(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "")
    assert loaded.view.backend == "sqlite" and loaded.view_dsn is None


def test_view_on_postgresql_needs_a_dsn(tmp_path: Path) -> None:
    assert "view.dsn" in load_error(tmp_path, '[view]\nbackend = "postgresql"\n')
    dsn = "postgresql://outlast@127.0.0.1:5432/view"
    loaded = load_text(tmp_path, f'[view]\nbackend = "postgresql"\ndsn = "{dsn}"\n')
    assert loaded.view_dsn == dsn


def test_unknown_view_backend_is_an_error(tmp_path: Path) -> None:
    assert "view.backend" in load_error(tmp_path, '[view]\nbackend = "mysql"\n')
