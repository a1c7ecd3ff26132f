"""Every Net::Server hook, as a documented no-op, in the order the flow calls them.

Override any of them in a subclass.  Each docstring says in which process the
hook runs, what has happened before it, and what its return value means.
The flow itself is written once, in :meth:`netserver.server.Server.run`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HookMixIn"]


class HookMixIn:
    """Net::Server's hooks.  Methods that may be overridden: all of them."""

    # -- start-up (parent process) ------------------------------------------

    def configure_hook(self) -> None:
        """First thing ``run()`` does, before any option is read."""

    def post_configure_hook(self) -> None:
        """After options are read, logging is open and the pid file written; before binding.

        The place to validate your own options (``self.config``)."""

    def post_bind_hook(self) -> None:
        """After every listener is bound, still as the starting user (before chroot/user/group)."""

    def pre_loop_hook(self) -> None:
        """After privileges are dropped, just before the server starts accepting."""

    def can_read_hook(self, handle: Any) -> bool:
        """An extra handle registered with ``add_read_handle`` is readable.

        Return True when it was dealt with; it is never treated as a connection."""
        return False

    # -- each connection (the process that serves it) ------------------------

    def post_accept_hook(self, request: Any) -> None:
        """A connection was accepted and ``self.client`` describes it; before access control."""

    def allow_deny_hook(self, request: Any) -> bool:
        """Your own access check, after the allow/deny rules passed; return False to refuse."""
        return True

    def request_denied_hook(self, request: Any) -> None:
        """The connection was refused by the rules or ``allow_deny_hook``; it is closed next."""

    def post_process_request_hook(self, request: Any) -> None:
        """The handler has finished; the connection is still open."""

    def post_client_connection_hook(self, request: Any) -> None:
        """The connection has been closed; last step for this client."""

    # -- forking personalities --------------------------------------------------

    def pre_fork_hook(self) -> None:
        """In the parent, just before a child is forked."""

    def child_init_hook(self, kind: str = "") -> None:
        """In a new child, after signals are reset and parent-only fds closed.

        ``kind`` is ``"dequeue"`` for a dequeue child."""

    def child_finish_hook(self, kind: str = "") -> None:
        """In a child, just before it exits."""

    def other_child_died_hook(self, pid: int) -> None:
        """In the parent: a child the server did not start has exited (its status is reaped)."""

    def idle_loop_hook(self) -> None:
        """PreFork parent: called on each pass of the management loop."""

    def child_is_talking_hook(self, message: str) -> None:
        """PreFork parent: a child wrote a line the server does not itself understand."""

    def run_dequeue(self) -> None:
        """Parent: fork a child that calls :meth:`dequeue` (every ``check_for_dequeue`` seconds)."""
        self._fork_dequeue()

    def _fork_dequeue(self) -> None:
        """The forking personalities fork the dequeue child here; nothing to fork in one process."""

    def dequeue(self) -> None:
        """In a dequeue child: process whatever queue your application keeps."""

    # -- logging and errors ---------------------------------------------------------

    def write_to_log_hook(self, level: int, message: str) -> None:
        """Write one log line; the default sends it to the configured ``log_file``."""
        self._logger.write(level, message)

    def fatal_hook(self, message: str) -> None:
        """An unrecoverable error; the server logs it and raises after this returns."""

    # -- shutting down and restarting ---------------------------------------------------

    def pre_server_close_hook(self) -> None:
        """The loop has ended; before children are stopped and sockets closed."""

    def post_child_cleanup_hook(self) -> None:
        """Parent: every child is gone; the pid file and lock files still exist."""

    def restart_close_hook(self) -> None:
        """HUP: just before the server re-executes itself (listeners stay open)."""

    def restart_open_hook(self) -> None:
        """HUP: in the new image, just before the inherited listeners are taken over."""
