"""Dropping privileges after binding: chroot, then groups, then user.

The order leaves no way back (SEI CERT POS36-C): ``chroot`` while still
root, ``setgroups`` to exactly the configured groups, ``setresgid``, then
``setresuid``; afterwards every id is checked, and so is the fact that root
cannot be regained.  Started as root with no ``user`` and no ``group``, the
server keeps its identity and warns (Net::Server 2.013's code, gunicorn and
the stdlib agree); ``user nobody`` is the usual choice.

Everything the serving process may import later is imported before the
drop: after it, the interpreter's own directories may be unreadable (or
outside the chroot), and a lazy import would be a crash.
"""

from __future__ import annotations

import errno
import importlib
import os
import pwd
import stat

from .records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    import grp
    from typing import List, Optional, Sequence

__all__ = ["Identity", "PrivilegeError", "plan_identity", "root_by_default", "drop", "preload", "describe",
           "path_hazard", "hand_over_fd", "hand_over_socket_file", "writable_by"]

PRELOAD = ("encodings.idna", "encodings.ascii", "encodings.latin_1", "encodings.utf_8",
           "stringprep", "unicodedata", "_strptime",
           # imported on first use (issue 12): the first log line or traceback may come after the chroot.
           # (Not logging.handlers: a syslog handler is made when the log is opened, before the drop.
           # The log's own modules come from ServerLog.preload_names.)
           "traceback")


class PrivilegeError(Exception):
    """A user/group/chroot set-up that cannot be carried out; the message says why."""


class Identity(NamedTuple):
    uid: int
    gid: int
    groups: List[int]
    user: str
    group: str


def _uid(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"user {user!r}: no such user") from None


def _gid(group: str) -> grp.struct_group:
    import grp  # an extension module: loaded only by a server that changes its group

    try:
        return grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
    except KeyError:
        raise PrivilegeError(f"group {group!r}: no such group") from None


def plan_identity(user: Optional[str], group: Optional[str]) -> Optional[Identity]:
    """Who to become, or None when nothing changes.

    As root: ``user`` defaults to the current user (root) and ``group`` to
    that user's primary group (``nogroup`` for nobody on Debian); neither
    given, nothing changes.  As anyone else, naming another user or group is
    an error.
    """
    root = os.geteuid() == 0
    if root and user is None and group is None:
        return None
    if not root:
        if user is not None and _uid(user).pw_uid != os.geteuid():
            raise PrivilegeError(f"user {user!r}: cannot change user when not started as root")
        if group is not None:
            gids = [_gid(g).gr_gid for g in group.replace(",", " ").split()]
            if gids[0] != os.getegid():
                raise PrivilegeError(f"group {group!r}: cannot change group when not started as root")
        return None
    entry = _uid(user) if user is not None else pwd.getpwuid(os.geteuid())
    if entry.pw_uid == 0 and group is None:
        return None
    if group is None:
        import grp

        try:
            names = [grp.getgrnam("nobody").gr_name] if entry.pw_name == "nobody" else []
        except KeyError:
            names = []
        group_entries = [_gid(names[0])] if names else [grp.getgrgid(entry.pw_gid)]
    else:
        group_entries = [_gid(g) for g in group.replace(",", " ").split()]
    gids = list(dict.fromkeys(g.gr_gid for g in group_entries))
    return Identity(entry.pw_uid, gids[0], gids, entry.pw_name, group_entries[0].gr_name)


def root_by_default(user: Optional[str], group: Optional[str]) -> bool:
    """Root with neither ``user`` nor ``group``: the server stays root (and says so once)."""
    return os.geteuid() == 0 and user is None and group is None


def preload(extra: Sequence[str] = ()) -> None:
    """Import what serving may need, while the interpreter's files are still readable."""
    for name in (*PRELOAD, *extra):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def drop(identity: Optional[Identity], chroot: Optional[str]) -> None:
    """chroot, setgroups, setresgid, setresuid — then verify; raises PrivilegeError."""
    if chroot:
        try:
            os.chroot(chroot)
            os.chdir("/")
        except OSError as exc:
            raise PrivilegeError(f"chroot {chroot}: {exc.strerror}") from None
    if identity is None:
        return
    try:
        os.setgroups(identity.groups)
        os.setresgid(identity.gid, identity.gid, identity.gid)
        os.setresuid(identity.uid, identity.uid, identity.uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot become {describe(identity)}: {exc.strerror}") from None
    verify(identity)


def verify(identity: Identity) -> None:
    """Every id is the target one, and root is out of reach."""
    if os.getresuid() != (identity.uid,) * 3 or os.getresgid() != (identity.gid,) * 3:
        raise PrivilegeError(f"privilege drop incomplete: uids {os.getresuid()}, gids {os.getresgid()}")
    if sorted(set(os.getgroups())) != sorted(set(identity.groups)):
        raise PrivilegeError(f"privilege drop incomplete: supplementary groups {os.getgroups()}")
    if identity.uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise PrivilegeError("privilege drop failed: root could be regained")


def describe(identity: Identity) -> str:
    return f"user {identity.user} ({identity.uid}), group {identity.group} ({identity.gid})"


# --------------------------------------------------------------------------- files root hands over
#
# Root opens the log files and binds the UNIX sockets, then hands them to the
# service user.  Those paths may sit in a directory that user can write, so
# root never follows a path the user controls (issue 14): every open is
# O_NOFOLLOW, a file must be a regular file with one link, and ownership is
# changed on the open descriptor, never by path.  What O_NOFOLLOW cannot cover
# — a directory *above* the file that the user could rename and replace with
# a symlink — is refused at start by :func:`path_hazard`.

def writable_by(st: os.stat_result, identity: Identity) -> bool:
    """Whether ``identity`` may create, rename or unlink entries in the directory ``st``."""
    if st.st_uid == identity.uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid in identity.groups or st.st_gid == identity.gid:
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def _replaceable(parent: os.stat_result, entry: os.stat_result, identity: Identity) -> bool:
    """Whether ``identity`` can replace ``entry`` inside the directory ``parent``."""
    if not writable_by(parent, identity):
        return False
    if parent.st_mode & stat.S_ISVTX:  # sticky (/tmp): only the owner of the entry or of the dir
        return identity.uid in (parent.st_uid, entry.st_uid)
    return True


def path_hazard(path: str, identity: Optional[Identity]) -> Optional[str]:
    """Why root must not use ``path`` on behalf of ``identity``, or None when it is safe.

    Refused: ``path`` itself is a symbolic link; a directory on the way to it
    (as written, or once symlinks are resolved) could be renamed or replaced
    by the service user, who could then point ``path`` anywhere.  The last
    directory being writable by that user is allowed: the file in it is only
    ever opened with O_NOFOLLOW and checked (see :func:`open_log_file`).
    """
    path = os.path.abspath(path)
    if identity is None or identity.uid == 0 or path.startswith(("/dev/", "/proc/")):
        return None  # /dev and /proc: the kernel's (or udev's) names, no user's
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return f"{path} is a symbolic link (name the file itself)"
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    for chain in (os.path.dirname(path), os.path.realpath(os.path.dirname(path))):
        parts = [p for p in chain.split(os.sep) if p]
        current = os.sep
        for part in parts:
            entry = os.path.join(current, part)
            try:
                parent_st, entry_st = os.stat(current), os.lstat(entry)
            except OSError:
                break
            if _replaceable(parent_st, entry_st, identity):
                return (f"{path}: directory {current} is writable by {identity.user}, who could replace "
                        f"{entry} (move the file, or make {current} writable by root only)")
            current = os.path.realpath(entry)
    return None


def hand_over_fd(fd: int, identity: Identity) -> None:
    """Give the open file ``fd`` to ``identity`` (fchown: the descriptor, never a path).

    Only a regular file: a log that is a terminal or a pipe (``/dev/stderr``)
    stays whose it is."""
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.fchown(fd, identity.uid, identity.gid)


def hand_over_socket_file(path: str, identity: Identity) -> None:
    """Give a UNIX socket file this process created to ``identity``.

    A socket file cannot be opened for I/O, so it is pinned with
    ``O_PATH|O_NOFOLLOW``, checked (a socket, owned by us, one link) and
    changed through ``/proc/self/fd``: whatever is renamed into ``path``
    meanwhile, only the inode checked is changed.  Raises OSError.
    """
    fd = os.open(path, getattr(os, "O_PATH", os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
            raise OSError(errno.EPERM, "not a socket file this server created")
        os.chown(f"/proc/self/fd/{fd}", identity.uid, identity.gid)
    finally:
        os.close(fd)
