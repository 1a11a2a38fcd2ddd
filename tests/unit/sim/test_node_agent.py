"""Unit tests of the node-agent simulator's data-path mechanics (tests/cluster/sim/node_agent.py): progress
throttling, cancel while throttled, and a start that fails on an API error. No cluster: the API calls are
replaced by recorders."""
from __future__ import annotations

import threading

import pytest
from kubernetes.client.rest import ApiException

from sim import contract as C
from sim import node_agent as na
from sim.config import SimConfig


class StubInformer:
    def __init__(self, objects=()):
        self.objects = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}

    def add_handler(self, _fn):
        pass

    def get(self, namespace, name):
        return self.objects.get((namespace, name))

    def items(self):
        return list(self.objects.values())


def make_agent(bytes_per_second=None):
    config = SimConfig()
    if bytes_per_second:
        config.update({"bytesPerSecond": str(bytes_per_second)})
    informers = {"PodVolumeRestore": StubInformer(), "DataDownload": StubInformer(), "Pod": StubInformer()}
    return na.NodeAgent(kube=None, state_dir="/nonexistent", informers=informers, config=config)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_progress_is_written_at_start_then_at_most_every_ten_seconds(monkeypatch):
    """Velero's restoreProgressCheckInterval (pkg/uploader/provider/provider.go) is 10 s."""
    clock = FakeClock()
    monkeypatch.setattr(na.time, "monotonic", clock)
    agent = make_agent(bytes_per_second=1 << 40)  # never throttled: only the progress rule acts
    writes = []
    monkeypatch.setattr(agent, "_transition", lambda kind, name, expect, status=None, **_kw: writes.append(
        (clock.now, status["progress"]["bytesDone"])))
    dp = na.DataPath("PodVolumeRestore", "pvr-1", "node-1")
    on_bytes, _st, _report = agent._throttle(dp, "PodVolumeRestore", "pvr-1", total=100)
    assert writes == [(1000.0, 0)]  # the start
    for _chunk in range(10):  # 10 chunks, 3 s apart
        clock.now += 3.0
        on_bytes(10)
    times = [t for t, _done in writes]
    assert times == [1000.0, 1012.0, 1024.0]
    assert all(b - a >= na.PROGRESS_INTERVAL for a, b in zip(times, times[1:]))
    assert writes[-1][1] == 80


def test_a_throttled_chunk_ends_at_once_on_cancel():
    agent = make_agent(bytes_per_second=1)  # a 100-byte chunk would wait 100 s
    agent._transition = lambda *a, **kw: None
    dp = na.DataPath("PodVolumeRestore", "pvr-1", "node-1")
    on_bytes, _st, _report = agent._throttle(dp, "PodVolumeRestore", "pvr-1", total=100)
    timer = threading.Timer(0.2, dp.cancel.set)
    timer.start()
    try:
        with pytest.raises(na.Cancelled):
            on_bytes(100)
    finally:
        timer.cancel()


def test_start_that_fails_on_an_api_error_is_forgotten_and_starts_on_the_next_try(monkeypatch):
    """A 503 on the Prepared -> InProgress update (apiserver restart) requeues the key, as Velero's reconciler
    does; the data path must not stay registered as running, else the PVR stays Prepared forever."""
    agent = make_agent()
    answers = [ApiException(status=503, reason="Service Unavailable"),
               {"metadata": {"name": "pvr-1"}, "status": {"phase": C.IN_PROGRESS}}]

    def transition(kind, name, expect, status=None, **_kw):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(agent, "_transition", transition)
    started = threading.Event()
    seen = []

    def target(dp, obj):
        seen.append(obj)
        started.set()

    with pytest.raises(ApiException):
        agent._start_path("PodVolumeRestore", "pvr-1", "node-1", target)
    assert "pvr-1" not in agent.paths
    monkeypatch.setattr(agent.queue, "add", lambda key: None)  # the finished path requeues its key
    agent._start_path("PodVolumeRestore", "pvr-1", "node-1", target)
    assert started.wait(5)
    # the data path starts from the object its InProgress update returned (no second read)
    assert seen == [{"metadata": {"name": "pvr-1"}, "status": {"phase": C.IN_PROGRESS}}]
