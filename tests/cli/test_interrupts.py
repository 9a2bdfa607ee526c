"""Ctrl-C in the CLI: an interrupt that lands in a finaliser is sent again, not dropped."""

import signal
import sys
import time

import pytest

from swatkit import cli


class _Finaliser:
    def __del__(self):   # (called directly below for its frame, a finaliser's)
        return sys._getframe()


def test_interrupt_outside_a_finaliser_raises(monkeypatch):
    monkeypatch.setattr(cli._Interrupts, "seen", False)
    with pytest.raises(KeyboardInterrupt):
        cli._Interrupts.handler(signal.SIGINT, sys._getframe())
    assert cli._Interrupts.seen


def test_interrupt_inside_a_finaliser_is_sent_again(monkeypatch):
    sent = []
    monkeypatch.setattr(cli.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(cli._Interrupts, "seen", False)
    # (it returns: a raise there would be dropped by Python)
    cli._Interrupts.handler(signal.SIGINT, _Finaliser().__del__())
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent == [(cli.os.getpid(), signal.SIGINT)]
    assert cli._Interrupts.seen
