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

import grp
import importlib
import os
import pwd
from typing import List, NamedTuple, Optional, Sequence

__all__ = ["Identity", "PrivilegeError", "plan_identity", "root_by_default", "drop", "preload", "describe"]

PRELOAD = ("encodings.idna", "encodings.ascii", "encodings.latin_1", "encodings.utf_8",
           "stringprep", "unicodedata", "_strptime", "logging.handlers")


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
