"""A stop signal as an exception: raised at once, or at the end of a step that must finish; later
signals ignored while the run cleans up; the previous handlers restored."""
from __future__ import annotations

import os
import signal

import pytest

from preprocess.stopping import Stopped, deferred, stop_on_signals


def test_a_stop_signal_is_raised_where_it_arrives_with_the_shells_exit_code():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as stopped:
        with stop_on_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10_000_000):      # the handler runs at the next bytecode: never reached
                pass
            pytest.fail("the signal was not raised")
    assert stopped.value.name == "SIGTERM" and stopped.value.exit_code == 143
    assert str(stopped.value) == "stopped by SIGTERM" and isinstance(stopped.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_step_that_must_finish_does_and_a_second_signal_does_not_cut_the_clean_up():
    finished, cleaned = [], []
    with pytest.raises(Stopped) as stopped:
        with stop_on_signals():
            try:
                with deferred():
                    os.kill(os.getpid(), signal.SIGINT)
                    finished.append("the whole step")
                pytest.fail("the deferred signal was not raised at the step's end")
            finally:
                os.kill(os.getpid(), signal.SIGTERM)      # while cleaning up: ignored
                cleaned.append("clean-up")
    assert finished == ["the whole step"] and cleaned == ["clean-up"]
    assert stopped.value.name == "SIGINT" and stopped.value.exit_code == 130
    with stop_on_signals():                               # a fresh run starts unstopped
        with deferred():
            pass
