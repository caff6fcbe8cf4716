"""Per-elder limits (`elders.thresholds`) for the admin operations: the one model the
detectors read too (`alerts.detect.limits`), so what an office may store is exactly what the
detectors use."""

from __future__ import annotations

from alerts.detect.limits import LIMIT_KEYS, ElderLimits

__all__ = ["LIMIT_KEYS", "ElderLimits"]
