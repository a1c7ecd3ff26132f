"""HUP: re-execute the same command line in the same process, keeping the listeners.

:class:`RestartMixIn` is the server's side (when a HUP may restart, what it
tells children first, what it hands to the new image); the functions are
the mechanics (the check run, the environment hand-over, the exec).

Before anything is touched, the new image is asked whether it can start: the
same command runs with ``NETSERVER_CHECK_CONFIG=1``, which configures and
exits; if that fails the server logs why and keeps running as it was (as
nginx does).  Then every listening socket is made inheritable, described in
``NETSERVER_BOUND_SOCKETS`` (``fd|key;fd|key``, Net::Server's BOUND_SOCKETS),
and the interpreter is exec'd with its original argument vector
(``sys.orig_argv``), environment and working directory.  The new image
adopts the sockets whose key matches a listener it wants and closes the
others; the kernel keeps queueing connections throughout, so none is refused.
"""

from __future__ import annotations

import os
import re
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, Optional, Tuple

    from .daemon import PidFile
    from .proto import Listener
    from .systemd import Notifier

__all__ = [
    "RestartMixIn", "CHECK_ENV", "SOCKETS_ENV", "CHILDREN_ENV", "STATE_ENV",
    "checking_config", "check_new_image", "exec_self", "take_inherited",
    "encode_sockets", "decode_sockets",
]

CHECK_ENV = "NETSERVER_CHECK_CONFIG"
HELD_ENV = "NETSERVER_CHECK_HELD"  # the listeners the running image hands over (the check binds the others)
SOCKETS_ENV = "NETSERVER_BOUND_SOCKETS"
CHILDREN_ENV = "NETSERVER_CHILDREN"
STATE_ENV = "NETSERVER_HUP_STATE"
PID_FILE_ENV = "NETSERVER_PID_FILE_FD"
CARRIED_SIGNALS = [signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGTTIN,
                   signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD]
CHECK_TIMEOUT = 60.0

# Captured at import, before anything could chdir or rewrite sys.argv.
_START_DIRECTORY = os.getcwd()
_ORIGINAL_ARGV = list(getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv)


def encode_sockets(sockets: Iterable[Tuple[int, str]]) -> str:
    """``[(5, "key"), (6, "other")]`` → ``"5|key;6|other"`` (Net::Server's BOUND_SOCKETS)."""
    return ";".join(f"{fd}|{key}" for fd, key in sockets)


# A new item starts only where ';' is followed by "<fd>|": a UNIX socket path in a key may hold ';'.
_ITEM_START = re.compile(r";(?=\d+\|)")


def decode_sockets(raw: str) -> Dict[str, List[int]]:
    """The inverse of :func:`encode_sockets`: listener key → fds (a key may come more than once)."""
    sockets: Dict[str, List[int]] = {}
    for item in _ITEM_START.split(raw) if raw else ():
        fd, _, key = item.partition("|")
        if fd.isdigit():
            sockets.setdefault(key, []).append(int(fd))
    return sockets


def command_line() -> List[str]:
    """The argument vector the interpreter was started with."""
    return list(_ORIGINAL_ARGV)


def checking_config() -> bool:
    """True in an image started only to check that it can configure."""
    return os.environ.get(CHECK_ENV) == "1"


def held_listeners() -> List[str]:
    """In a check run: the keys of the listeners the running image will hand over."""
    held = os.environ.get(HELD_ENV, "")
    return held.split(";") if held else []


def check_new_image(held: Iterable[str] = (), timeout: float = CHECK_TIMEOUT) -> Tuple[bool, str]:
    """Run the command line in check mode: ``(True, "")`` or ``(False, why)``.

    ``held`` are the keys of the listeners this image will hand over; the
    check binds (and closes) every other listener the new configuration has,
    so a port already in use is found before the running server is replaced.
    """
    import subprocess  # only when a HUP asks: not on every start (issue 15)

    env = dict(os.environ, **{CHECK_ENV: "1", HELD_ENV: ";".join(held)})
    for key in (SOCKETS_ENV, CHILDREN_ENV, STATE_ENV, PID_FILE_ENV, "LISTEN_FDS", "LISTEN_PID"):
        env.pop(key, None)
    try:
        done = subprocess.run(command_line(), executable=sys.executable, env=env, cwd=_START_DIRECTORY,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    if done.returncode == 0:
        return True, ""
    lines = [line for line in done.stderr.decode("utf-8", "replace").splitlines()
             if line.strip() and not line.startswith("Try '")]
    return False, lines[-1] if lines else f"exit status {done.returncode}"


def exec_self(sockets: Iterable[Tuple[int, str]], children: Iterable[int], state: Dict,
              pid_file_fd: Optional[int] = None) -> None:
    """Replace this process image; returns only if ``exec`` failed (raises ``OSError``).

    The locked pid file's descriptor crosses the exec too, so no second
    instance can take the lock while the new image starts.
    """
    env = dict(os.environ)
    if pid_file_fd is not None:
        os.set_inheritable(pid_file_fd, True)
        env[PID_FILE_ENV] = str(pid_file_fd)
    pairs = list(sockets)
    for fd, _ in pairs:
        os.set_inheritable(fd, True)
    env[SOCKETS_ENV] = encode_sockets(pairs)
    env[CHILDREN_ENV] = ",".join(str(pid) for pid in children)
    import json

    env[STATE_ENV] = json.dumps(state)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.chdir(_START_DIRECTORY)
    except OSError:
        pass
    # Handlers reset to the default at exec: a signal arriving before the new image installs
    # its own would kill it.  Blocked signals stay pending across exec instead.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, CARRIED_SIGNALS)
    try:
        os.execve(sys.executable, command_line(), env)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def take_inherited() -> Tuple[Dict[str, List[int]], List[int], Dict]:
    """Read (and remove from the environment) what the previous image handed over.

    Returns listener key → fds, the pids of the old image's children, and
    its saved state (``{}`` when this is not a restart).
    """
    sockets = decode_sockets(os.environ.pop(SOCKETS_ENV, ""))
    children = [int(p) for p in os.environ.pop(CHILDREN_ENV, "").split(",") if p.isdigit()]
    saved = os.environ.pop(STATE_ENV, "")
    state = {}
    if saved:  # json only after a HUP: a first start does not load it into every child
        import json

        try:
            state = json.loads(saved)
        except ValueError:
            pass
    return sockets, children, state


def restarting() -> Optional[bool]:
    return SOCKETS_ENV in os.environ


def take_pid_file_fd() -> Optional[int]:
    """The locked pid file descriptor the previous image handed over, if any."""
    raw = os.environ.pop(PID_FILE_ENV, "")
    if not raw.isdigit():
        return None
    fd = int(raw)
    try:
        os.set_inheritable(fd, False)
    except OSError:
        return None
    return fd


class RestartMixIn:
    """HUP re-exec for :class:`~netserver.server.Server` (personalities override the ``restart_*`` steps)."""

    if TYPE_CHECKING:
        # What a HUP uses of the class this is mixed into (netserver.Server): its flow's state,
        # listeners, log, hook, pid file and service-manager notifier, and the engine's signal steps.
        _in_run: bool               # inside run(): the flow that can start again
        _restart_requested: bool    # the loop ends to re-exec
        _shutdown_request: bool     # the engine's: the loop ends
        listeners: List[Listener]
        pid_file: Optional[PidFile]
        notifier: Notifier

        def log(self, level: int, message: str) -> None: ...
        def restart_close_hook(self) -> None: ...
        def _dispatch_signals(self, _token: Any = None) -> None: ...

    def restartable(self) -> bool:
        """HUP re-exec needs the Net::Server flow (``run()``), which knows how to start again."""
        return self._in_run

    def _sig_hup(self) -> None:
        """Check that the new image configures, then leave the loop to re-exec."""
        if self._restart_requested or self._checking_restart:
            return  # one re-exec picks up the latest configuration
        self.log(2, "Received HUP, checking that the server can restart")
        self._checking_restart = True
        try:
            self._check_and_restart()
        finally:
            self._checking_restart = False

    _checking_restart = False

    def _check_and_restart(self) -> None:
        ok, why = check_new_image(held=[listener.hup_string() for listener in self.listeners])
        if not ok:
            self.log(0, f"HUP refused: the new configuration does not load; still running as before: {why}")
            return
        # Signals that came during the check are acted on first: a TERM must not be lost in the exec.
        self._dispatch_signals()
        if self._shutdown_request:
            return
        self._restart_requested = True
        self._shutdown_request = True

    def restart(self) -> None:
        """Re-exec in place with the listeners kept open; returns only if exec failed."""
        self.restart_close_hook()
        self._before_restart()
        self.log(2, "Restarting: re-executing with the listening sockets kept open")
        self.notifier.reloading()
        pid_fd = self.pid_file.fd if self.pid_file is not None else None
        try:
            exec_self(((listener.fileno(), listener.hup_string()) for listener in self.listeners),
                              self._restart_children(), self._restart_state(), pid_fd)
        except OSError as exc:
            self.log(0, f"Restart failed, still running as before: exec: {exc}")
            for listener in self.listeners:  # exec_self made every open one inheritable: undo it
                if listener.socket is not None:
                    listener.socket.set_inheritable(False)
            if pid_fd is not None:
                os.set_inheritable(pid_fd, False)

    def _before_restart(self) -> None:
        """Personalities tell their children here (the default server has none)."""

    def _restart_children(self) -> List[int]:
        """Pids the new image must go on reaping."""
        return []

    def _restart_state(self) -> Dict[str, Any]:
        """What the new image should keep (TTIN/TTOU adjustments, say)."""
        return {}
