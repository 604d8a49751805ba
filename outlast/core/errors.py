"""Matrix errors as exceptions that carry their errcode and HTTP status."""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    """An error the client receives as ``{"errcode", "error"}`` JSON."""

    def __init__(
        self,
        status: int,
        errcode: str,
        error: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.error, **self.extra}


def forbidden(error: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", error)


def bad_json(error: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", error)


def invalid_param(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def missing_param(error: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", error)


def not_found(error: str) -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", error)


def unavailable(error: str, retry_after_s: int = 2) -> MatrixError:
    """The site cannot commit right now (no quorum, leader election, overload)."""
    return MatrixError(
        503,
        "M_UNAVAILABLE",
        error,
        extra={"retry_after_ms": retry_after_s * 1000},
        headers={"Retry-After": str(retry_after_s)},
    )


def log_unavailable(exc: Exception) -> MatrixError:
    """What a client is told when the log could not commit (see LogUnavailable)."""
    return unavailable(f"cannot commit right now: {exc}")


def too_large(error: str) -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", error)
