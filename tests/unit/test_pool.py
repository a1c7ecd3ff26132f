"""PreFork's pool policy (netserver.process.pool): tables and a fake clock, no processes."""

from __future__ import annotations

import pytest

from netserver.process.pool import CrashBackoff, Limits, Plan, SpawnThrottle, plan

# min_servers, max_servers, min_spare_servers, max_spare_servers
DEFAULT = Limits(5, 50, 2, 10)


# -- plan -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("total, idle, limits, may_retire, expected, why", [
    (0, 0, DEFAULT, True, Plan(5, 0), "start-up: min_servers"),
    (5, 5, DEFAULT, True, Plan(0, 0), "steady at min_servers, all idle"),
    (5, 1, DEFAULT, True, Plan(1, 0), "one spare short"),
    (5, 0, DEFAULT, True, Plan(2, 0), "all busy: min_spare_servers more"),
    (3, 3, DEFAULT, True, Plan(2, 0), "below min_servers with spares: min_servers wins"),
    (2, 0, DEFAULT, True, Plan(3, 0), "below both: the larger need wins"),
    (49, 0, DEFAULT, True, Plan(1, 0), "spawning stops at max_servers"),
    (50, 0, DEFAULT, True, Plan(0, 0), "at max_servers, all busy: nothing to do"),
    (20, 15, DEFAULT, True, Plan(0, 5), "idle above max_spare_servers: trim to it"),
    (20, 15, DEFAULT, False, Plan(0, 0), "the same between check_for_waiting ticks: keep"),
    (7, 7, DEFAULT, True, Plan(0, 0), "idle within the spare bounds"),
    (12, 12, DEFAULT, True, Plan(0, 2), "trimming stops at max_spare_servers"),
    (6, 6, Limits(5, 50, 2, 1), True, Plan(0, 1), "trimming never goes below min_servers"),
    (5, 5, Limits(5, 50, 2, 1), True, Plan(0, 0), "at min_servers nothing idle is retired"),
    (60, 20, DEFAULT, False, Plan(0, 10), "over max_servers (TTOU): excess retired at once"),
    (60, 4, DEFAULT, True, Plan(0, 4), "over max_servers: only idle children can go"),
    (60, 0, DEFAULT, True, Plan(0, 0), "over max_servers, all busy: wait for them"),
    (0, 0, Limits(1, 1, 0, 1), True, Plan(1, 0), "a pool of one"),
    (1, 0, Limits(1, 1, 0, 1), True, Plan(0, 0), "a pool of one, busy"),
    (0, 0, Limits(0, 0, 0, 1), True, Plan(0, 0), "max_servers 0: never spawn"),
])
def test_plan(total, idle, limits, may_retire, expected, why):
    assert plan(total, idle, limits, may_retire) == expected, why


@pytest.mark.parametrize("total", range(0, 70, 3))
@pytest.mark.parametrize("idle_share", [0.0, 0.5, 1.0])
def test_plan_invariants(total, idle_share):
    """Whatever the state: never both spawn and retire, never past max_servers, retire only idle."""
    idle = int(total * idle_share)
    for may_retire in (True, False):
        wanted = plan(total, idle, DEFAULT, may_retire)
        assert wanted.spawn >= 0 and wanted.retire >= 0
        assert not (wanted.spawn and wanted.retire)
        assert total + wanted.spawn <= max(total, DEFAULT.max_servers)
        assert wanted.retire <= idle


# -- SpawnThrottle --------------------------------------------------------------------------------

def run_throttle(throttle: SpawnThrottle, steps):
    """Feed (now, wanted) pairs; return what was allowed at each."""
    return [throttle.allow(wanted, now) for now, wanted in steps]


@pytest.mark.parametrize("steps, expected, why", [
    ([(0.0, 0)], [0], "nothing wanted, nothing allowed"),
    ([(0.0, 5)], [1], "the first second allows one"),
    ([(0.0, 5), (0.5, 5)], [1, 0], "the rate holds for the rest of the second"),
    ([(0.0, 9), (1.0, 9), (2.0, 9), (3.0, 9)], [1, 2, 4, 8], "doubles each second of need"),
    ([(0.0, 3), (1.0, 3), (2.0, 3)], [1, 2, 3], "never more than wanted"),
    ([(0.0, 9), (1.0, 9), (3.5, 9)], [1, 2, 1], "a second without need: back to one"),
    ([(0.0, 9), (1.0, 0), (1.2, 9)], [1, 0, 2], "a tick with no need does not reset the window"),
])
def test_spawn_throttle(steps, expected, why):
    assert run_throttle(SpawnThrottle(cap=32), steps) == expected, why


def test_spawn_throttle_is_capped():
    throttle = SpawnThrottle(cap=4)
    allowed = run_throttle(throttle, [(float(t), 100) for t in range(6)])
    assert allowed == [1, 2, 4, 4, 4, 4]


def test_spawn_throttle_rate_needs_the_last_window_used_up():
    """The rate doubles only if the previous second's allowance was all taken."""
    throttle = SpawnThrottle()
    assert run_throttle(throttle, [(0.0, 1), (1.0, 1)]) == [1, 1]
    assert throttle.rate == 2  # the first second's one was used up
    assert run_throttle(throttle, [(2.0, 1)]) == [1]
    assert throttle.rate == 1  # the second's two were not


def test_spawn_throttle_grant_is_a_burst_outside_the_rate():
    throttle = SpawnThrottle()
    throttle.grant(5)
    assert run_throttle(throttle, [(0.0, 3), (0.0, 3), (0.0, 3)]) == [3, 2, 1]
    assert throttle.granted == 0


# -- CrashBackoff ---------------------------------------------------------------------------------

class Clock:
    """A fake monotonic clock."""

    def __init__(self, now: float = 100.0):
        self.now = now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def test_crash_backoff_pauses_after_threshold_early_failures():
    clock, backoff = Clock(), CrashBackoff(threshold=3, early=1.0, longest=30.0)
    for _ in range(2):
        backoff.record(0.1, True, clock.now)
    assert not backoff.paused(clock.now) and not backoff.announce
    backoff.record(0.1, True, clock.now)
    assert backoff.paused(clock.now) and backoff.announce and backoff.delay == 1.0
    assert backoff.paused(clock.advance(0.9))
    assert not backoff.paused(clock.advance(0.2))


def test_crash_backoff_delay_doubles_up_to_longest():
    clock, backoff = Clock(), CrashBackoff(threshold=1, early=1.0, longest=5.0)
    delays = []
    for _ in range(6):
        backoff.record(0.0, True, clock.now)
        delays.append(backoff.delay)
        clock.advance(backoff.delay)  # the pause ends; the next child dies at once again
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_crash_backoff_deaths_during_a_pause_do_not_extend_it():
    clock, backoff = Clock(), CrashBackoff(threshold=1)
    backoff.record(0.0, True, clock.now)
    until = backoff.until
    backoff.record(0.0, True, clock.advance(0.5))
    assert backoff.until == until and backoff.delay == 1.0


@pytest.mark.parametrize("lifetime, failed, resets, why", [
    (5.0, True, True, "a child that lived past `early` resets, even if it failed later"),
    (5.0, False, True, "a long clean life resets"),
    (0.1, False, False, "a quick clean exit (max_requests 1, say) neither counts nor resets"),
])
def test_crash_backoff_what_counts(lifetime, failed, resets, why):
    clock, backoff = Clock(), CrashBackoff(threshold=2)
    backoff.record(0.1, True, clock.now)
    backoff.record(lifetime, failed, clock.now)
    if resets:
        assert backoff.failures == 0 and backoff.delay == 0.0 and not backoff.paused(clock.now), why
    else:
        assert backoff.failures == 1 and not backoff.paused(clock.now), why


def test_crash_backoff_reset_ends_a_pause():
    clock, backoff = Clock(), CrashBackoff(threshold=1)
    backoff.record(0.0, True, clock.now)
    assert backoff.paused(clock.now)
    backoff.record(10.0, False, clock.now)  # an old child (from before the crashes) exits cleanly
    assert not backoff.paused(clock.now)


# -- which idle children PreFork retires (its one clock-dependent choice) ---------------------------

@pytest.mark.parametrize("now, over_max, expected", [
    (100.0, False, [1, 3]),     # only children at least min_child_ttl (10 s) old, oldest first
    (100.0, True, [1, 3, 2]),   # over max_servers: age does not protect
    (5.0, False, []),           # nobody is old enough yet
    (105.0, False, [1, 3, 2]),  # the clock passed in decides, not the real one
])
def test_retirable_by_the_clock_it_is_given(now, over_max, expected):
    from types import SimpleNamespace

    from netserver.personalities.prefork import PreForkMixIn
    from netserver.process.children import Child

    host = SimpleNamespace(_host=SimpleNamespace(config=SimpleNamespace(min_child_ttl=10.0)))
    idle = [Child(2, "prefork", started=95.0), Child(1, "prefork", started=0.0), Child(3, "prefork", started=50.0)]
    assert [c.pid for c in PreForkMixIn._retirable(host, idle, now, over_max)] == expected
