"""Facts about the deployment itself, on the control streams no view follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from outlast.log.facts.base import Fact, Fields


@dataclass(frozen=True)
class HealthProbe(Fact):
    """A worker's self-report (outlast/ops/health.py), written about once a second to
    its own health subject; every site's dashboard reads the latest of each."""

    OP: ClassVar[str] = "probe"
    report: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.report.items() if k != "op"}

    @classmethod
    def read(cls, d: Fields) -> HealthProbe:
        return cls({k: v for k, v in d.data.items() if k != "op"})
