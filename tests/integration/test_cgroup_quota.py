"""A container's CPU quota, for real: a process held to 0.2 CPU by a cgroup (v1, as root) is
saturated although the machine's CPUs idle (netserver/process/cpuload.py)."""

import os
import subprocess
import sys

import pytest

from harness import ROOT, TIMEOUT, python_env

V1 = "/sys/fs/cgroup"
CONTROLLERS = ("cpu", "cpuacct")

# Joins the cgroups, spins a thread, and reports what a PreFork parent in it would see.
PROBE = r"""
import os, sys, threading, time
for directory in sys.argv[1:]:
    with open(os.path.join(directory, "cgroup.procs"), "w") as procs:
        procs.write(str(os.getpid()))
from netserver.process.cpuload import CPUIdle, cgroup_quota
quota = cgroup_quota()
def spin():
    while True:
        pass
threading.Thread(target=spin, daemon=True).start()
with_quota, without = CPUIdle(quota=quota, window=0.5), CPUIdle(window=0.5)
time.sleep(1.0)
print(quota.cpus, with_quota.saturated(), without.saturated())
"""


def v1_cgroups_writable() -> bool:
    return os.geteuid() == 0 and all(os.access(os.path.join(V1, name), os.W_OK) for name in CONTROLLERS)


@pytest.mark.skipif(not v1_cgroups_writable(), reason="needs root and cgroup v1 cpu, cpuacct hierarchies")
def test_a_process_held_to_its_cpu_quota_is_saturated_while_the_machine_idles():
    name = f"netserver-test-{os.getpid()}"
    made = []
    try:
        for controller in CONTROLLERS:
            path = os.path.join(V1, controller, name)
            os.mkdir(path)
            made.append(path)
        with open(os.path.join(made[0], "cpu.cfs_period_us"), "w") as fh:
            fh.write("100000")
        with open(os.path.join(made[0], "cpu.cfs_quota_us"), "w") as fh:
            fh.write("20000")  # 0.2 CPU, as `docker run --cpus 0.2`
        probe = subprocess.run([sys.executable, "-c", PROBE, *made], capture_output=True, text=True,
                               env=python_env(), cwd=ROOT, timeout=TIMEOUT)
        assert probe.returncode == 0, probe.stderr
        cpus, with_quota, without = probe.stdout.split()
        assert float(cpus) == pytest.approx(0.2)
        # The machine's other CPU (at least) idled: by /proc/stat alone it looks unsaturated,
        # unless the rest of the machine was busy too; the quota says it was held back.
        assert with_quota == "True", (with_quota, without)
    finally:
        for path in reversed(made):
            os.rmdir(path)  # the probe has exited: its cgroups are empty
