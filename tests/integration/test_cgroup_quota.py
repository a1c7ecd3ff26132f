"""A container's CPU quota, for real: a process held to 0.2 CPU by a cgroup (v1, as root) is
saturated by its quota alone, whatever the machine's CPUs do (netserver/process/cgroup.py,
netserver/process/cpuload.py)."""

import os
import subprocess
import sys

import pytest

from harness import ROOT, TIMEOUT, python_env

V1 = "/sys/fs/cgroup"
CONTROLLERS = ("cpu", "cpuacct")

# Joins the cgroup, spins a thread, and reports what a PreFork parent there would see from its quota
# alone (no /proc/stat: a busy machine must not decide the answer).
PROBE = r"""
import os, sys, threading, time
for directory in sys.argv[1:]:
    with open(os.path.join(directory, "cgroup.procs"), "w") as procs:
        procs.write(str(os.getpid()))
from netserver.process.cgroup import cgroup_quota
from netserver.process.cpuload import CPUIdle
quota = cgroup_quota()
def spin():
    while True:
        pass
threading.Thread(target=spin, daemon=True).start()
by_quota = CPUIdle("/nonexistent", quota=quota, window=0.5)
time.sleep(1.0)
print(quota.cpus, by_quota.saturated())
"""

pytestmark = [pytest.mark.process, pytest.mark.root, pytest.mark.slow]


def v1_hierarchies():
    """The distinct directories of the cpu and cpuacct hierarchies (one when mounted together:
    cpu and cpuacct are then links to cpu,cpuacct), or None where they cannot be written."""
    if os.geteuid() != 0:
        return None
    found = []
    for name in CONTROLLERS:
        path = os.path.realpath(os.path.join(V1, name))
        if not os.path.isfile(os.path.join(path, "cgroup.procs")) or not os.access(path, os.W_OK):
            return None
        if path not in found:
            found.append(path)
    return found


@pytest.mark.skipif(v1_hierarchies() is None, reason="needs root and cgroup v1 cpu, cpuacct hierarchies")
@pytest.mark.parametrize("where", ["own", "parent"])  # parent: a slice's or a pod's limit
def test_a_process_held_to_its_cpu_quota_is_saturated_by_the_quota_alone(where):
    name = f"netserver-test-{os.getpid()}"
    made, joined = [], []
    try:
        for hierarchy in v1_hierarchies():
            path = os.path.join(hierarchy, name)
            os.mkdir(path)
            made.append(path)
            if where == "parent":
                os.mkdir(os.path.join(path, "child"))
                made.append(os.path.join(path, "child"))
            joined.append(made[-1])
        cpu = next(path for path in made if os.path.exists(os.path.join(path, "cpu.cfs_quota_us")))
        with open(os.path.join(cpu, "cpu.cfs_period_us"), "w") as fh:
            fh.write("100000")
        with open(os.path.join(cpu, "cpu.cfs_quota_us"), "w") as fh:
            fh.write("20000")  # 0.2 CPU, as `docker run --cpus 0.2`
        probe = subprocess.run([sys.executable, "-c", PROBE, *joined], capture_output=True, text=True,
                               env=python_env(), cwd=ROOT, timeout=TIMEOUT)
        assert probe.returncode == 0, probe.stderr
        cpus, by_quota = probe.stdout.split()
        assert float(cpus) == pytest.approx(0.2)
        assert by_quota == "True", "a spinning thread held to 0.2 CPU used all of it"
    finally:
        for path in reversed(made):
            os.rmdir(path)  # the probe has exited: its cgroups are empty
