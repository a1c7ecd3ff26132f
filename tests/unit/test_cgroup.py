"""Where a process's CPU quota is found (netserver/process/cgroup.py), from written
/proc/self/cgroup, /proc/self/mountinfo and cgroup trees laid out as hosts and containers lay
them out."""

import pytest

from netserver.process.cgroup import cgroup_quota
from netserver.process.cpuload import cgroup_cpu_quota


def mount(point, root="/", kind="cgroup2", options="rw"):
    """One mountinfo line (its fixed fields, the separator, type, source, super options)."""
    return f"32 31 0:29 {root} {point} rw,nosuid,relatime shared:9 - {kind} {kind} {options}\n"


def tree(tmp_path, cgroup, mounts, files):
    """Write /proc/self/cgroup, mountinfo (``{fs}`` is the tree's root) and the cgroup files."""
    fs = str(tmp_path / "fs")
    (tmp_path / "cgroup").write_bytes(cgroup if isinstance(cgroup, bytes) else cgroup.encode())
    (tmp_path / "mountinfo").write_text("".join(line.replace("{fs}", fs) for line in mounts))
    for name, text in files.items():
        path = tmp_path / "fs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return str(tmp_path / "cgroup"), str(tmp_path / "mountinfo")


ROOTFS = "22 1 8:1 / / rw,relatime - ext4 /dev/root rw\n"
V2 = [ROOTFS, mount("{fs}")]
V1_SPLIT = [ROOTFS, mount("{fs}/cpu", kind="cgroup", options="rw,cpu"),
            mount("{fs}/cpuacct", kind="cgroup", options="rw,cpuacct"),
            mount("{fs}/cpuset", kind="cgroup", options="rw,cpuset")]
V1_JOINT = [ROOTFS, mount("{fs}/cpu,cpuacct", kind="cgroup", options="rw,xattr,cpu,cpuacct")]


@pytest.mark.parametrize("cgroup, mounts, files, cpus, usage", [
    # cgroup v2, the process's own cgroup limited (docker run --cpus 0.5 on a v2 host, no namespace)
    ("0::/box\n", V2, {"box/cpu.max": "50000 100000\n"}, 0.5, "box/cpu.stat"),
    # v2 with a cgroup namespace: the container sees its cgroup as / and it is mounted as the root
    ("0::/\n", V2, {"cpu.max": "150000 100000\n"}, 1.5, "cpu.stat"),
    # v2, the limit on the pod, the container's own cgroup unlimited (Kubernetes)
    ("0::/kubepods/pod1/ctr\n", V2, {"kubepods/pod1/cpu.max": "20000 100000\n",
                                      "kubepods/pod1/ctr/cpu.max": "max 100000\n"}, 0.2, "kubepods/pod1/cpu.stat"),
    # v2, limits at two levels: the smaller counts
    ("0::/slice/svc\n", V2, {"slice/cpu.max": "50000 100000\n", "slice/svc/cpu.max": "25000 100000\n"},
     0.25, "slice/svc/cpu.stat"),
    # v1, cpu and cpuacct mounted together (most v1 hosts)
    ("4:cpu,cpuacct:/c\n3:cpuset:/\n0::/\n", V1_JOINT, {"cpu,cpuacct/c/cpu.cfs_quota_us": "300000\n",
                                                      "cpu,cpuacct/c/cpu.cfs_period_us": "100000\n"},
     3.0, "cpu,cpuacct/c/cpuacct.usage"),
    # v1, mounted apart (as on the machine the suite was written on), with v2's empty unified line
    ("3:cpu:/c\n2:cpuacct:/c\n1:cpuset:/\n0::/\n", V1_SPLIT + [mount("{fs}/unified")],
     {"cpu/c/cpu.cfs_quota_us": "50000\n", "cpu/c/cpu.cfs_period_us": "100000\n"}, 0.5, "cpuacct/c/cpuacct.usage"),
    # v1 Docker: /proc/self/cgroup shows the host's path, the mount is the container's cgroup itself
    ("4:cpu,cpuacct:/docker/abc\n", [ROOTFS, mount("{fs}/cpu,cpuacct", root="/docker/abc", kind="cgroup",
                                                   options="rw,cpu,cpuacct")],
     {"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
     0.5, "cpu,cpuacct/cpuacct.usage"),
    # v1, the limit on a parent (a systemd slice's CPUQuota=)
    ("4:cpu,cpuacct:/app.slice/svc\n", V1_JOINT, {"cpu,cpuacct/app.slice/cpu.cfs_quota_us": "20000\n",
                                                  "cpu,cpuacct/app.slice/cpu.cfs_period_us": "100000\n",
                                                  "cpu,cpuacct/app.slice/svc/cpu.cfs_quota_us": "-1\n",
                                                  "cpu,cpuacct/app.slice/svc/cpu.cfs_period_us": "100000\n"},
     0.2, "cpu,cpuacct/app.slice/cpuacct.usage"),
    # v1 apart, the process in different cgroups of the two: its time is its cpuacct cgroup's
    ("3:cpu:/x\n2:cpuacct:/y\n", V1_SPLIT, {"cpu/x/cpu.cfs_quota_us": "50000\n", "cpu/x/cpu.cfs_period_us": "100000\n"},
     0.5, "cpuacct/y/cpuacct.usage"),
    # cgroup2 mounted twice, a bind of another cgroup listed first: the mount that holds the path
    ("0::/box\n", [ROOTFS, mount("{fs}/other", root="/other"), mount("{fs}")],
     {"other/cpu.max": "10000 100000\n", "box/cpu.max": "50000 100000\n"}, 0.5, "box/cpu.stat"),
    # the host's hierarchy covered by the container's own cgroup mounted on the same point (Docker
    # with /sys/fs/cgroup bind-mounted in): the later mount is the one visible
    ("4:cpu,cpuacct:/docker/abc\n", [ROOTFS, mount("{fs}/cpu,cpuacct", kind="cgroup", options="rw,cpu,cpuacct"),
                                     mount("{fs}/cpu,cpuacct", root="/docker/abc", kind="cgroup",
                                           options="rw,cpu,cpuacct")],
     {"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
     0.5, "cpu,cpuacct/cpuacct.usage"),
    # a mount point with a space, escaped in mountinfo
    ("0::/box\n", [ROOTFS, mount("{fs}/with\\040space")], {"with space/box/cpu.max": "50000 100000\n"},
     0.5, "with space/box/cpu.stat"),
])
def test_the_quota_is_found_where_the_kernel_says(tmp_path, cgroup, mounts, files, cpus, usage):
    quota = cgroup_quota(*tree(tmp_path, cgroup, mounts, files))
    assert quota is not None and quota.cpus == pytest.approx(cpus)
    assert quota.usage_file == str(tmp_path / "fs" / usage)
    assert cgroup_cpu_quota(*tree(tmp_path, cgroup, mounts, files)) == -(-cpus // 1)  # rounded up


@pytest.mark.parametrize("cgroup, mounts, files", [
    ("0::/box\n", V2, {"box/cpu.max": "max 100000\n"}),                                    # no limit
    ("0::/box\n", V2, {"box/cpu.max": "0 100000\n"}),                                      # nonsense
    ("0::/box\n", V2, {"box/cpu.max": "50000\n"}),                                         # malformed
    ("0::/box\n", V2, {}),                                                                  # no cpu controller
    ("0::/box\n", [ROOTFS], {"box/cpu.max": "50000 100000\n"}),                            # not mounted
    ("3:cpu:/c\n", V1_SPLIT, {"cpu/c/cpu.cfs_quota_us": "-1\n", "cpu/c/cpu.cfs_period_us": "100000\n"}),
    ("3:cpuset:/c\n", V1_SPLIT, {"cpuset/c/cpu.cfs_quota_us": "50000\n"}),                 # cpuset is not cpu
    ("garbage\n\n::\n", V2, {"cpu.max": "max 100000\n"}),                                   # malformed lines
    (b"0::/caf\xe9\n", V2, {}),                                                             # not UTF-8
    ("0::/../sib\n", [ROOTFS, mount("{fs}/cg")], {"cpu.max": "10000 100000\n",            # never above
                                                 "sib/cpu.max": "10000 100000\n"}),       # the mount point
    ("3:cpu:/c\n", V1_SPLIT, {"cpu/c/cpu.cfs_quota_us": b"5\xff\n", "cpu/c/cpu.cfs_period_us": "100000\n"}),
])
def test_no_quota_is_none(tmp_path, cgroup, mounts, files):
    assert cgroup_quota(*tree(tmp_path, cgroup, mounts, files)) is None
    assert cgroup_cpu_quota(*tree(tmp_path, cgroup, mounts, files)) == 0


def test_unreadable_proc_files_are_no_quota(tmp_path):
    assert cgroup_quota(str(tmp_path / "missing"), str(tmp_path / "missing")) is None
    assert cgroup_quota(*tree(tmp_path, "0::/\n", ["malformed mountinfo line\n", "1 2 3 - \n"], {})) is None


def test_this_machine_answers_without_raising():
    quota = cgroup_quota()
    assert quota is None or quota.cpus > 0
