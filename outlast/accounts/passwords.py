"""Password hashing with argon2id, off the event loop (it is memory-hard on purpose)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from outlast.config import AuthConfig


class Passwords:
    def __init__(self, config: AuthConfig) -> None:
        self._hasher = PasswordHasher(
            time_cost=config.argon2_time_cost,
            memory_cost=config.argon2_memory_kib,
            parallelism=config.argon2_parallelism,
            type=Type.ID,
        )
        # Verifying against this keeps a login for an unknown user as slow as a real one.
        self._decoy = self._hasher.hash("decoy password")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return bool(self._hasher.verify(stored_hash or self._decoy, password))
            except (VerificationError, InvalidHashError):
                return False

        ok = await asyncio.get_running_loop().run_in_executor(None, check)
        return ok and stored_hash is not None
