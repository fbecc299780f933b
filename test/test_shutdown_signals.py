"""A second SIGINT / SIGTERM is ignored, and the operator is told once that SIGKILL is the
way out (real signals, in a fresh Python process: the suite's own process carries the
signal handlers that earlier tests' rclpy and runtimes installed)."""
import subprocess
import sys
import textwrap

from conftest import REPO

_PRELUDE = """
import os, signal, sys
from mfaranet_ros.ros.node import ShutdownSignals
handler = ShutdownSignals()
handler.install()
handler.started()
"""


def run_signals(body: str) -> subprocess.CompletedProcess:
    """``body`` after the handler is installed, in its own interpreter."""
    code = _PRELUDE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_a_second_signal_says_once_that_it_is_ignored_and_how_to_force_the_exit():
    proc = run_signals("""
        os.kill(os.getpid(), signal.SIGINT)
        assert handler.received.is_set()
        sys.stderr.write("--- first signal done\\n"); sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        print(os.getpid())
    """)
    assert proc.returncode == 0, proc.stderr
    first, _, after = proc.stderr.partition("--- first signal done\n")
    assert "ignored" not in first  # the first one ends the node, no word needed
    assert after.count("ignored") == 1, after
    assert "SIGTERM ignored" in after and "SIGKILL" in after
    assert proc.stdout.strip() in after  # names the process to kill


def test_after_final_signals_are_ignored_silently():
    proc = run_signals("""
        handler.final()
        os.kill(os.getpid(), signal.SIGINT)
        assert not handler.received.is_set()
    """)
    assert proc.returncode == 0 and "ignored" not in proc.stderr, proc.stderr
