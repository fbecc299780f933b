"""A second SIGINT / SIGTERM is ignored, and the operator is told once that SIGKILL is the
way out (in this process, real signals)."""
import os
import signal

import pytest

from mfaranet_ros.ros.node import ShutdownSignals


@pytest.fixture
def signals():
    saved = {sig: signal.getsignal(sig) for sig in ShutdownSignals.SIGNALS}
    handler = ShutdownSignals()
    handler.install()
    handler.started()
    yield handler
    for sig, previous in saved.items():
        signal.signal(sig, previous)


def test_a_second_signal_says_once_that_it_is_ignored_and_how_to_force_the_exit(signals,
                                                                                capfd):
    os.kill(os.getpid(), signal.SIGINT)
    assert signals.received.is_set()
    assert capfd.readouterr().err == ""  # the first one ends the node, no word needed
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    err = capfd.readouterr().err
    assert err.count("ignored") == 1, err
    assert "SIGTERM ignored" in err and "SIGKILL" in err and str(os.getpid()) in err


def test_after_final_signals_are_ignored_silently(signals, capfd):
    signals.final()
    os.kill(os.getpid(), signal.SIGINT)
    assert not signals.received.is_set() and capfd.readouterr().err == ""
