"""Runtime configuration of the simulators: ConfigMap ``sim-config`` in the Velero namespace."""
from __future__ import annotations

import logging
import threading

from .contract import DEFAULT_PREPARE_TIMEOUT, VELERO_NS

log = logging.getLogger("sim.config")

CONFIGMAP = "sim-config"
DEFAULTS = {
    "bytesPerSecond": str(50 * 1024 * 1024),
    "concurrencyPerNode": "4",
    "failSnapshots": "",
    "crashAfterBytes": "",
    "failRebind": "false",
    "prepareTimeoutSeconds": str(int(DEFAULT_PREPARE_TIMEOUT)),
}


class SimConfig:
    """Thread-safe view of the sim-config ConfigMap (missing/invalid keys fall back to defaults)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.data = dict(DEFAULTS)

    def update(self, data: dict | None):
        merged = dict(DEFAULTS)
        merged.update({k: str(v) for k, v in (data or {}).items()})
        with self.lock:
            if merged != self.data:
                log.info("sim-config: %s", merged)
            self.data = merged

    def _get(self, k):
        with self.lock:
            return self.data.get(k, DEFAULTS[k])

    def _num(self, k, cast=int):
        try:
            return cast(self._get(k))
        except (TypeError, ValueError):
            return cast(DEFAULTS[k]) if DEFAULTS[k] else None

    @property
    def bytes_per_second(self) -> int:
        return max(1, self._num("bytesPerSecond"))

    @property
    def concurrency_per_node(self) -> int:
        return self._num("concurrencyPerNode")

    @property
    def fail_snapshots(self) -> set[str]:
        return {s.strip() for s in self._get("failSnapshots").split(",") if s.strip()}

    @property
    def crash_after_bytes(self) -> int | None:
        v = self._get("crashAfterBytes").strip()
        try:
            return int(v) if v else None
        except ValueError:
            return None

    @property
    def fail_rebind(self) -> bool:
        return self._get("failRebind").strip().lower() == "true"

    @property
    def prepare_timeout(self) -> float:
        return float(self._num("prepareTimeoutSeconds", float))


def ensure_configmap(kube, velero_ns: str = VELERO_NS):
    if kube.get_or_none("ConfigMap", velero_ns, CONFIGMAP) is None:
        kube.create("ConfigMap", {"metadata": {"name": CONFIGMAP, "namespace": velero_ns},
                                  "data": dict(DEFAULTS)})
