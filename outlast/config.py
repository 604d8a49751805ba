"""Configuration: a TOML file whose every key has a documented default.

Every key below is listed, with its default and meaning, in docs/config.md.
Unknown keys are an error rather than silently ignored: a typo in a
production config must not quietly fall back to a default.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outlast.core.push_prune import PrunePolicy


@dataclass
class ServerConfig:
    server_name: str = "localhost"
    listen: str = "127.0.0.1:8008"
    data_dir: str = "./outlast-data"
    site: str = "local"
    public_baseurl: str = ""
    workers: int = 1
    reuse_port: bool = False
    worker: int = 0
    # Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass
class RegistrationConfig:
    enabled: bool = True


@dataclass
class LimitsConfig:
    """Request size, rate limits and connection hygiene (docs/config.md, ``[limits]``)."""

    enabled: bool = True
    max_request_bytes: int = 1_048_576
    rate_limit_per_second: float = 10.0
    rate_limit_burst: int = 100
    register_per_second: float = 0.1
    register_burst: int = 5
    login_per_second: float = 0.2
    login_burst: int = 10
    login_failures_before_backoff: int = 3
    login_backoff_max_seconds: float = 300.0
    send_per_second: float = 3.0
    send_burst: int = 30
    max_connections_per_address: int = 256
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keepalive_timeout_seconds: float = 30.0


@dataclass
class LogConfig:
    nats_urls: list[str] = field(default_factory=list)
    prefix: str = "outlast"
    partitions: int = 4
    replicas: int = 1
    duplicate_window_seconds: int = 120
    sync_always: bool = True
    publish_timeout_seconds: float = 5.0
    nats_port: int = 0
    cluster_port: int = 0
    cluster_routes: list[str] = field(default_factory=list)
    cluster_name: str = "outlast"
    monitor_url: str = ""
    # False: this worker's credential may not create or change streams (a cluster's
    # `worker` user); it checks that they exist and says so when one is missing.
    manage_streams: bool = True
    # TLS to nats-server: the CA that signed the nodes' certificates (verified),
    # and this worker's own certificate and key when the nodes ask for one.
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""


@dataclass
class ViewConfig:
    backend: str = "sqlite"  # or "postgresql" (then dsn says where)
    dsn: str = ""
    path: str = ""
    shared: bool = False
    max_lag_seconds: float = 5.0
    snapshot_interval_seconds: float = 0.0
    snapshot_keep: int = 3

    # A PostgreSQL view is shared by any number of workers, on any machines
    # (docs/scale.md); a SQLite one only by the workers of one `serve --workers N`.
    @property
    def is_shared(self) -> bool:
        """Whether other worker processes use this view too (then one of them projects)."""
        return self.shared or self.backend == "postgresql"


VIEW_BACKENDS = ("sqlite", "postgresql")


@dataclass
class AuthConfig:
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    # Lifetime of access tokens issued with a refresh token (clients that ask for one);
    # other access tokens never expire. 0 for refresh tokens: they never expire.
    refreshable_access_token_lifetime_ms: int = 300_000
    refresh_token_lifetime_ms: int = 0


# The cheapest argon2 settings, as a config section. For tests and benchmarks
# that register many users on a small machine; never for a deployment, where
# they would make guessing stolen password hashes cheap.
FAST_HASH_TOML = """
[auth]
argon2_time_cost = 1
argon2_memory_kib = 8192
argon2_parallelism = 1
"""

# Every rate limit off, as a config section: for load generators that speak
# for many users from one address (benchmarks, fire drills, the cluster
# tests). Deployments keep the defaults (on).
NO_LIMITS_TOML = """
[limits]
enabled = false
"""


@dataclass
class ConsistencyConfig:
    # Benchmark-only switch (see docs/consistency.md): false skips the read barrier,
    # which lets a revoked token through at another site for a few milliseconds.
    read_barrier: bool = True
    wait_seconds: float = 5.0


@dataclass
class SyncConfig:
    max_timeout_ms: int = 60_000
    default_timeline_limit: int = 10


@dataclass
class MediaConfig:
    max_upload_bytes: int = 52_428_800
    allow_legacy_download: bool = True
    max_thumbnail_source_bytes: int = 33_554_432
    max_thumbnail_pixels: int = 32_000_000
    thumbnail_workers: int = 1
    thumbnail_sizes: list[str] = field(
        default_factory=lambda: [
            "32x32-crop",
            "96x96-crop",
            "320x240-scale",
            "640x480-scale",
            "800x600-scale",
        ]
    )
    unused_expires_seconds: int = 86_400


@dataclass
class VoipConfig:
    turn_uris: list[str] = field(default_factory=list)
    turn_shared_secret: str = ""
    turn_username: str = ""
    turn_password: str = ""
    turn_user_lifetime_seconds: int = 86_400


@dataclass
class PresenceConfig:
    enabled: bool = True


@dataclass
class DirectoryConfig:
    users_may_publish: bool = True


@dataclass
class AdminConfig:
    users: list[str] = field(default_factory=list)


@dataclass
class PushConfig:
    enabled: bool = True
    request_timeout_seconds: float = 10.0
    ack_wait_seconds: float = 30.0
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    give_up_after_seconds: float = 3600.0
    max_in_flight: int = 64
    # Forgetting old notifications (push_actions), by log time (docs/push.md, "Pruning").
    # Every site must use the same values, or their /notifications differ.
    prune_every: int = 16  # 0: never prune
    prune_min_age_seconds: float = 86400.0
    prune_max_age_seconds: float = 30 * 86400.0
    prune_keep_read: int = 100
    prune_keep_unread: int = 1000

    def prune_policy(self) -> PrunePolicy:
        return PrunePolicy(
            min_age_ms=int(self.prune_min_age_seconds * 1000),
            max_age_ms=int(self.prune_max_age_seconds * 1000),
            keep_read=self.prune_keep_read,
            keep_unread=self.prune_keep_unread,
            every=self.prune_every,
        )


@dataclass
class MetricsConfig:
    enabled: bool = True


@dataclass
class BackupConfig:
    # Scheduled backups (docs/backup.md): 0 = off. Every site may run the schedule;
    # a lease in the log decides which one takes each period's backup.
    schedule_seconds: float = 0.0
    target: str = ""  # directory every site that runs the schedule can write (shared)
    keep: int = 96  # newest backups kept; older ones are deleted after each new one
    max_age_seconds: float = 0.0  # also delete backups older than this (0: no age limit)
    lease_seconds: float = 30.0  # a dead holder's lease lapses after this long


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    view: ViewConfig = field(default_factory=ViewConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    voip: VoipConfig = field(default_factory=VoipConfig)
    directory: DirectoryConfig = field(default_factory=DirectoryConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    push: PushConfig = field(default_factory=PushConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def view_dsn(self) -> str | None:
        """The view's PostgreSQL database, or None for a SQLite view file."""
        return self.view.dsn if self.view.backend == "postgresql" else None

    @property
    def view_path(self) -> Path:
        return Path(self.view.path) if self.view.path else self.data_path / "view.sqlite"

    @property
    def embedded_nats(self) -> bool:
        return not self.log.nats_urls


DATA_DIR_CONFIG = "outlast.toml"


class ConfigError(ValueError):
    """The configuration file is unreadable or names an unknown key."""


def _apply(section: Any, values: dict[str, Any], where: str) -> None:
    known = {f.name: f for f in dataclasses.fields(section)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown configuration key {where}.{key}")
        current = getattr(section, key)
        if isinstance(current, bool) and not isinstance(value, bool):
            raise ConfigError(f"{where}.{key} must be true or false")
        if (
            isinstance(current, int)
            and not isinstance(current, bool)
            and (not isinstance(value, int) or isinstance(value, bool))
        ):
            raise ConfigError(f"{where}.{key} must be a whole number")
        if isinstance(current, float):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"{where}.{key} must be a number")
            value = float(value)
        if isinstance(current, str) and not isinstance(value, str):
            raise ConfigError(f"{where}.{key} must be a string")
        if isinstance(current, list) and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise ConfigError(f"{where}.{key} must be a list of strings")
        setattr(section, key, value)


def load(path: str | Path | None) -> Config:
    """Read a TOML file (or nothing) into a Config with defaults filled in."""
    config = Config()
    if path is None:
        return config
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    sections = {f.name for f in dataclasses.fields(config)}
    for name, values in raw.items():
        if name not in sections or not isinstance(values, dict):
            raise ConfigError(f"unknown configuration section [{name}]")
        _apply(getattr(config, name), values, name)
    validate(config)
    return config


def validate(config: Config) -> None:
    if config.log.partitions < 1 or config.log.partitions > 64:
        raise ConfigError("log.partitions must be between 1 and 64")
    from outlast.log.names import PREFIX_PATTERN

    if not PREFIX_PATTERN.fullmatch(config.log.prefix):
        raise ConfigError(
            "log.prefix must be lower-case letters, digits and _, starting with a letter"
            " (at most 32)"
        )
    if not 1 <= config.server.workers <= 64:
        raise ConfigError("server.workers must be between 1 and 64")
    if config.log.replicas not in (1, 3, 5):
        raise ConfigError("log.replicas must be 1, 3 or 5")
    if not 0 < config.consistency.wait_seconds <= 60:
        raise ConfigError("consistency.wait_seconds must be more than 0 and at most 60")
    if config.view.backend not in VIEW_BACKENDS:
        raise ConfigError(f"view.backend must be one of {', '.join(VIEW_BACKENDS)}")
    if config.view.backend == "postgresql" and not config.view.dsn:
        raise ConfigError('view.backend = "postgresql" needs view.dsn (the database to use)')
    if config.view.snapshot_interval_seconds < 0:
        raise ConfigError("view.snapshot_interval_seconds must be 0 (off) or positive")
    if not 1 <= config.view.snapshot_keep <= 100:
        raise ConfigError("view.snapshot_keep must be between 1 and 100")
    if config.media.max_upload_bytes < 1:
        raise ConfigError("media.max_upload_bytes must be positive")
    from outlast.core.thumbnails import parse_sizes

    try:
        parse_sizes(config.media.thumbnail_sizes)
    except ValueError as exc:
        raise ConfigError(f"media.thumbnail_sizes: {exc}") from None
    _validate_limits(config)
    if not 1 <= config.media.thumbnail_workers <= 16:
        raise ConfigError("media.thumbnail_workers must be between 1 and 16")
    if config.media.max_thumbnail_pixels < 1:
        raise ConfigError("media.max_thumbnail_pixels must be positive")
    import ipaddress

    for proxy in config.server.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"server.trusted_proxies: {proxy!r} is not an address") from None
    _validate_backup(config)
    _validate_push(config)
    if bool(config.log.tls_cert) != bool(config.log.tls_key):
        raise ConfigError("log.tls_cert and log.tls_key go together")
    if config.log.tls_cert and not config.log.tls_ca:
        raise ConfigError("log.tls_cert needs log.tls_ca (the CA the nodes are verified with)")
    host, _, port = config.server.listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("server.listen must look like HOST:PORT")


def _validate_push(config: Config) -> None:
    push = config.push
    if push.prune_every < 0:
        raise ConfigError("push.prune_every must be 0 (never prune) or positive")
    if push.prune_min_age_seconds < 0 or push.prune_max_age_seconds < push.prune_min_age_seconds:
        raise ConfigError("push.prune_min_age_seconds must be >= 0 and <= prune_max_age_seconds")
    if push.prune_keep_read < 0 or push.prune_keep_unread < 1:
        raise ConfigError("push.prune_keep_read must be >= 0 and push.prune_keep_unread >= 1")


def _validate_backup(config: Config) -> None:
    backup = config.backup
    if backup.schedule_seconds < 0:
        raise ConfigError("backup.schedule_seconds must be 0 (off) or positive")
    if backup.schedule_seconds and not backup.target:
        raise ConfigError("backup.schedule_seconds needs backup.target (where backups go)")
    if backup.keep < 1:
        raise ConfigError("backup.keep must be at least 1")
    if backup.max_age_seconds < 0:
        raise ConfigError("backup.max_age_seconds must be 0 (no limit) or positive")
    if not 3 <= backup.lease_seconds <= 3600:
        raise ConfigError("backup.lease_seconds must be between 3 and 3600")


def _validate_limits(config: Config) -> None:
    limits = config.limits
    for name in ("header_timeout_seconds", "body_timeout_seconds", "keepalive_timeout_seconds"):
        if getattr(limits, name) <= 0:
            raise ConfigError(f"limits.{name} must be positive")
    for name in (
        "rate_limit_per_second",
        "register_per_second",
        "login_per_second",
        "send_per_second",
        "login_backoff_max_seconds",
    ):
        if getattr(limits, name) < 0:
            raise ConfigError(f"limits.{name} must not be negative")
    for name in ("rate_limit_burst", "register_burst", "login_burst", "send_burst"):
        if getattr(limits, name) < 1:
            raise ConfigError(f"limits.{name} must be at least 1")
    for name in ("login_failures_before_backoff", "max_connections_per_address"):
        if getattr(limits, name) < 0:
            raise ConfigError(f"limits.{name} must not be negative")


def listen_address(config: Config) -> tuple[str, int]:
    host, _, port = config.server.listen.rpartition(":")
    return host.strip("[]"), int(port)


def resolve_config(args: argparse.Namespace) -> Config:
    """The configuration a command runs with: the file (``--config``), then the command's
    overrides (``--data-dir``, ``--listen``, ``--server-name``, ``--workers``).

    Without ``--config``, a data directory's own ``outlast.toml`` (written by
    ``outlast backup restore``: the restored deployment's names) is the file."""
    path = getattr(args, "config", None)
    data_dir = getattr(args, "data_dir", None)
    if path is None and data_dir and (Path(data_dir) / DATA_DIR_CONFIG).is_file():
        path = Path(data_dir) / DATA_DIR_CONFIG
    config = load(path)
    if getattr(args, "data_dir", None):
        config.server.data_dir = args.data_dir
    if getattr(args, "listen", None):
        config.server.listen = args.listen
    if getattr(args, "server_name", None):
        config.server.server_name = args.server_name
    if getattr(args, "workers", None):
        config.server.workers = args.workers
    validate(config)
    return config
