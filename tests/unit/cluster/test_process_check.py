"""tests/cluster/cluster.py tells a component that is still exec'ing from one that died.

Right after Popen returns, /proc/<pid>/cmdline of the new process reads empty for a few milliseconds (the kernel
sets up the new program's arguments after it closed the close-on-exec pipe Popen waits on). Reading that as
"exited" failed cluster starts in CI and left the process running."""

import subprocess
import sys

import cluster


def test_an_empty_cmdline_is_a_process_mid_exec():
    argv = ["/bin/sleep", "5"]
    assert cluster._is_our_process(b"", argv) is True  # pylint: disable=protected-access
    assert cluster._is_our_process(b"/bin/sleep\x005\x00", argv) is True  # pylint: disable=protected-access


def test_a_reused_pid_or_unknown_component_is_not_ours():
    argv = ["/bin/sleep", "5"]
    assert cluster._is_our_process(b"/usr/bin/python3\x00x\x00", argv) is False  # pylint: disable=protected-access
    assert cluster._is_our_process(b"/bin/sleep\x005\x00", None) is False  # pylint: disable=protected-access


def test_a_process_just_started_is_ours_at_once():
    """What _wait sees: the pid right after Popen returns, before the program has run. A few in a hundred of these
    starts read an empty cmdline here (most starts of the 185 MB control-plane binary do), so a check that takes
    that for a dead process fails this test."""
    argv = [sys.executable, "-c", "import time; time.sleep(2)"]
    for _attempt in range(100):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            with open("/proc/%d/cmdline" % proc.pid, "rb") as handle:
                cmdline = handle.read()
            assert cluster._is_our_process(cmdline, argv), cmdline  # pylint: disable=protected-access
        finally:
            proc.kill()
            proc.wait()
