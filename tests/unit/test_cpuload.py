"""``CPUIdle``: the idle share of a process's CPUs between two looks at /proc/stat, from written files."""

import pytest

from netserver.process.cgroup import CgroupQuota
from netserver.process.cpuload import CPUIdle, read_stat

#        user nice system idle iowait irq softirq steal guest guest_nice
ROW = "{name} {user} 0 {system} {idle} {iowait} 0 {softirq} 0 7 0\n"


def stat(path, rows):
    """``rows``: name -> (user, idle); "cpu" is the total of the others unless given."""
    rows = dict(rows)
    rows.setdefault("cpu", tuple(map(sum, zip(*rows.values(), strict=True))))
    text = ROW.format(name="cpu ", user=rows["cpu"][0], system=0, idle=rows["cpu"][1], iowait=0, softirq=0)
    text += "".join(ROW.format(name=name, user=user, system=0, idle=idle, iowait=0, softirq=0)
                    for name, (user, idle) in rows.items() if name != "cpu")
    path.write_text(text + "intr 1 2 3\nctxt 9\n")


def test_read_stat_counts_iowait_as_idle_and_leaves_guest_out(tmp_path):
    path = tmp_path / "stat"
    path.write_text(ROW.format(name="cpu ", user=100, system=50, idle=30, iowait=20, softirq=10))
    assert read_stat(str(path)) == (50, 210)


def test_read_stat_sums_the_cpus_asked_for(tmp_path):
    path = tmp_path / "stat"
    stat(path, {"cpu0": (100, 10), "cpu1": (5, 200), "cpu2": (50, 50)})
    assert read_stat(str(path)) == (260, 415)
    assert read_stat(str(path), {0, 2}) == (60, 210)
    assert read_stat(str(path), {7}) is None


@pytest.mark.parametrize("text", ["", "intr 1 2 3\n", "cpu  x y z\n", "cpu  1 2 3\n"])
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
    stat(path, {"cpu0": (1000, 1000)})
    cpu = CPUIdle(str(path), window=0)
    stat(path, {"cpu0": (1000 + busy, 1000 + idle)})
    assert cpu.saturated() is saturated


def test_only_the_processs_own_cpus_count(tmp_path):
    """Pinned to cpu1 (taskset, a cpuset), which is saturated, while cpu0 idles."""
    path = tmp_path / "stat"
    stat(path, {"cpu0": (0, 1000), "cpu1": (1000, 0)})
    pinned, everything = CPUIdle(str(path), cpus={1}, window=0), CPUIdle(str(path), window=0)
    stat(path, {"cpu0": (0, 1200), "cpu1": (1200, 0)})
    assert pinned.saturated() and not everything.saturated()


def just_saturated(path) -> CPUIdle:
    """A CPUIdle whose last look found 200 busy ticks and no idle one."""
    stat(path, {"cpu0": (1000, 1000)})
    cpu = CPUIdle(str(path), window=0)
    stat(path, {"cpu0": (1200, 1000)})
    assert cpu.saturated()
    return cpu


def test_a_look_within_the_window_keeps_the_verdict(tmp_path):
    path = tmp_path / "stat"
    cpu = just_saturated(path)
    cpu.window = 3600
    stat(path, {"cpu0": (1200, 5000)})  # idle now, but within the window: not looked at
    assert cpu.saturated()


def test_no_stat_means_not_saturated(tmp_path):
    path = tmp_path / "stat"
    cpu = just_saturated(path)
    path.unlink()
    assert not cpu.saturated(), "without /proc/stat a pool grows by Net::Server's rule alone"
    assert not CPUIdle(str(tmp_path / "missing"), window=0).saturated()


# -- a container's CPU quota: the machine may idle while the cgroup is held to its share -----
# (where the quota is found: tests/unit/test_cgroup.py)

def quota_of(tmp_path, usage_usec=1000000):
    """A 0.5-CPU quota whose cgroup has used ``usage_usec`` (cgroup v2's cpu.stat)."""
    (tmp_path / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec 9\n")
    return CgroupQuota(50000, 100000, str(tmp_path / "cpu.stat"))


# CPU seconds the cgroup used in the 2 s between two looks, with a quota of 0.5 CPU -> saturated?
@pytest.mark.parametrize("used, saturated", [
    (1.0, True),    # all of its quota
    (0.92, True),   # 92%
    (0.8, False),   # 80%: it could run more
    (0.0, False),
])
def test_a_cgroup_at_its_quota_is_saturated_while_the_machine_idles(tmp_path, used, saturated):
    now = [100.0]
    path = tmp_path / "stat"
    stat(path, {"cpu0": (1000, 1000), "cpu1": (1000, 1000)})
    quota = quota_of(tmp_path)
    cpu = CPUIdle(str(path), window=1, quota=quota, clock=lambda: now[0])
    stat(path, {"cpu0": (1100, 1100), "cpu1": (1000, 1200)})  # the machine: 75% idle
    quota_of(tmp_path, 1000000 + int(used * 1e6))
    now[0] += 2
    assert cpu.saturated() is saturated
    assert not CPUIdle(str(path), window=1, clock=lambda: now[0]).saturated()  # without the quota


def test_an_unreadable_cgroup_usage_leaves_the_machines_verdict(tmp_path):
    now = [100.0]
    path = tmp_path / "stat"
    stat(path, {"cpu0": (1000, 1000)})
    cpu = CPUIdle(str(path), window=1, quota=quota_of(tmp_path), clock=lambda: now[0])
    (tmp_path / "cpu.stat").write_text("nr_periods 3\n")
    stat(path, {"cpu0": (1200, 1000)})
    now[0] += 2
    assert cpu.saturated(), "the machine's CPUs saturated: saturated, whatever the cgroup says"
    stat(path, {"cpu0": (1200, 1200)})
    now[0] += 2
    assert not cpu.saturated()


def test_cgroup_usage_reads_v2_microseconds_and_v1_nanoseconds(tmp_path):
    assert quota_of(tmp_path, 2500000).usage() == 2.5
    (tmp_path / "cpuacct.usage").write_text("1500000000\n")
    assert CgroupQuota(1, 1, str(tmp_path / "cpuacct.usage")).usage() == 1.5
    assert CgroupQuota(1, 1, str(tmp_path / "missing")).usage() is None
    assert CgroupQuota(1, 1, None).usage() is None
