"""``CPUIdle``: the machine's idle CPU share between two looks at /proc/stat, from written files."""

import pytest

from netserver.process.cpuload import CPUIdle, read_stat

#         user nice system idle iowait irq softirq steal guest guest_nice
LINE = "cpu  {user} 0 {system} {idle} {iowait} 0 {softirq} 0 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"


def stat(path, user=0, system=0, idle=0, iowait=0, softirq=0):
    path.write_text(LINE.format(user=user, system=system, idle=idle, iowait=iowait, softirq=softirq))


def test_read_stat_counts_iowait_as_idle_and_leaves_guest_out(tmp_path):
    path = tmp_path / "stat"
    stat(path, user=100, system=50, idle=30, iowait=20, softirq=10)
    assert read_stat(str(path)) == (50, 210)


@pytest.mark.parametrize("text", ["", "intr 1 2 3\n", "cpu  x y z\n"])
def test_an_unreadable_stat_is_none(tmp_path, text):
    path = tmp_path / "stat"
    path.write_text(text)
    assert read_stat(str(path)) is None
    assert read_stat(str(tmp_path / "missing")) is None


# busy ticks, idle ticks between the two looks -> saturated?
@pytest.mark.parametrize("busy, idle, saturated", [
    (200, 0, True),     # no idle time at all
    (190, 10, True),    # 5% idle: the CPUs are the limit
    (170, 30, False),   # 15% idle: another process would run
    (10, 190, False),   # children waiting on something else
])
def test_saturated_is_the_idle_share_since_the_last_look(tmp_path, busy, idle, saturated):
    path = tmp_path / "stat"
    stat(path, user=1000, idle=1000)
    cpu = CPUIdle(str(path))
    stat(path, user=1000 + busy, idle=1000 + idle)
    assert cpu.saturated() is saturated


def test_no_tick_between_looks_keeps_the_verdict_and_no_stat_means_not_saturated(tmp_path):
    path = tmp_path / "stat"
    stat(path, user=1000, idle=1000)
    cpu = CPUIdle(str(path))
    stat(path, user=1200, idle=1000)
    assert cpu.saturated()
    assert cpu.saturated(), "nothing elapsed: the last verdict stands"
    path.unlink()
    assert not cpu.saturated(), "without /proc/stat a pool grows by Net::Server's rule alone"
    assert not CPUIdle(str(tmp_path / "missing")).saturated()
