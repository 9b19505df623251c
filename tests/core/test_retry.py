"""The one backoff policy (emoedge.core.retry) every reconnecting part uses."""

import pytest

from emoedge.core.retry import Backoff


def test_delays_double_from_the_first_up_to_the_cap_and_reset_after_a_success():
    b = Backoff(0.5, 3.0)
    assert [b.next_delay_s() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next_delay_s() == 0.5


def test_a_limited_backoff_is_exhausted_after_its_attempts():
    b = Backoff(0.1, 1.0, attempts=2)
    b.next_delay_s()
    assert not b.exhausted
    b.next_delay_s()
    assert b.exhausted


def test_a_backoff_that_cannot_wait_is_refused():
    with pytest.raises(ValueError):
        Backoff(0, 1)
