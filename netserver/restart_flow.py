"""HUP in the server: check the new image, then re-exec in place with the listeners.

The mechanics (environment hand-over, exec, the check run) are in
:mod:`netserver.restart`; this mixin is the server's side of it: when a HUP
may restart, what it tells children first, and what it hands to the new image.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

from . import restart

__all__ = ["RestartMixIn"]


class RestartMixIn:
    """HUP re-exec for :class:`~netserver.server.Server` (personalities override the ``restart_*`` steps)."""

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
        ok, why = restart.check_new_image(held=[listener.hup_string() for listener in self.listeners])
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
            restart.exec_self(((l.fileno(), l.hup_string()) for l in self.listeners),
                              self._restart_children(), self._restart_state(), pid_fd)
        except OSError as exc:
            self.log(0, f"Restart failed, still running as before: exec: {exc}")
            for listener in self.listeners:
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
