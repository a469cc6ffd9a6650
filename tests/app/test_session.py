import pytest

from app.session import NotOperatorError, OperatorLock, OperatorLockConfig


def test_first_commanding_tab_takes_control_and_others_watch():
    lock = OperatorLock()
    lock.require("tab-a", now=0.0)
    assert lock.is_operator("tab-a", now=0.1)
    with pytest.raises(NotOperatorError, match="Take control"):
        lock.require("tab-b", now=0.2)
    assert not lock.is_operator("tab-b", now=0.2)


def test_take_control_moves_the_lock():
    lock = OperatorLock()
    lock.require("tab-a", now=0.0)
    lock.take("tab-b", now=1.0)
    assert lock.holder(now=1.0) == "tab-b"
    with pytest.raises(NotOperatorError):
        lock.require("tab-a", now=1.1)


def test_a_quiet_holder_loses_control():
    lock = OperatorLock(OperatorLockConfig(idle_timeout_s=5.0))
    lock.require("tab-a", now=0.0)
    lock.seen("tab-a", now=4.0)
    with pytest.raises(NotOperatorError):
        lock.require("tab-b", now=8.0)          # a seen 4 s ago: still operating
    lock.require("tab-b", now=9.5)              # a silent for 5.5 s: b may take over
    assert lock.holder(now=9.5) == "tab-b"


def test_a_tab_without_session_cannot_take_control():
    with pytest.raises(NotOperatorError, match="reload"):
        OperatorLock().take("")
