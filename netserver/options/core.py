"""The base server's options (Net::Server's names, meanings and defaults).

Personalities declare theirs in their own modules; all of them are collected
along the class's MRO by ``Server.options(template)``.
"""

from __future__ import annotations

from ..access import AccessConfigError, compile_patterns, parse_cidr_list
from ..log import LogConfigError, read_log_config, resolve_log_function, syslog_facility_names, validate_log_file
from ..proto.spec import PortSpecError, known_protocol, parse_ipv, parse_port
from .option import Option
from .validators import (
    choice,
    somaxconn,
    switch_or,
    to_bool,
    to_existing_dir,
    to_group,
    to_int,
    to_optional_str,
    to_path,
    to_signal_names,
    to_str,
    to_user,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Tuple


def _checked(check):
    """Validate with ``check`` but keep the value as the user wrote it."""

    def convert(value: Any) -> Any:
        try:
            check(value)
        except (AccessConfigError, LogConfigError, PortSpecError) as exc:
            message = str(exc)
            for prefix in (f"{value!r}: ", f"{str(value)!r}: "):
                message = message[len(prefix):] if message.startswith(prefix) else message
            raise ValueError(message) from None
        return value

    convert.__name__ = getattr(check, "__name__", "convert")
    return convert


def _port(value: Any) -> Any:
    """Check the spec's syntax now; the host/proto/ipv defaults are applied at bind time."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith(("/", ".", "~")):  # a socket path: its proto may come from 'proto'
            return _checked(lambda v: parse_port(v, default_proto="unix"))(value)
    return _checked(parse_port)(value)


def _ipv(value: Any) -> str:
    try:
        return parse_ipv(value)
    except PortSpecError as exc:
        raise ValueError(str(exc)) from None


def _proto(value: Any) -> str:
    text = to_str(value).strip()
    name, _, ipv = text.partition("/")
    if not known_protocol(name):
        raise ValueError("unknown protocol (tcp, udp, unix, unixdgram, ssl, or module:Class)")
    return text if ipv else name.lower() if "." not in name and ":" not in name else name


def _log_file(value: Any) -> Any:
    try:
        return validate_log_file(value)
    except LogConfigError as exc:
        message = str(exc)
        prefix = f"log_file {value!r}"  # the option and value are named by OptionError already
        message = message[len(prefix):].lstrip(": ") if message.startswith(prefix) else message
        raise ValueError(message) from None


def _log_config(value: Any) -> str:
    path = to_path(value)
    try:
        read_log_config(path)
    except LogConfigError as exc:
        raise ValueError(str(exc)) from None
    return path


def _log_function(value: Any) -> Any:
    """A callable (kept), ``module:callable`` (imported now) or a method name (looked up at start)."""
    if value is None or callable(value):
        return value
    text = to_str(value).strip()
    if ":" in text:
        try:
            return resolve_log_function(text)
        except LogConfigError as exc:
            raise ValueError(str(exc)) from None
    if not text.isidentifier():
        raise ValueError("must be module:callable or the name of a server method")
    return text


def _facility(value: Any) -> str:
    text = to_str(value).strip().lower()
    if text not in syslog_facility_names():
        raise ValueError("unknown syslog facility")
    return text


REVERSE_LOOKUPS = ("double", "double-detail", "double-autofail", "double-debug")  # besides on/off

OPTIONS: Tuple[Option, ...] = (
    # -- configuration and logging --
    Option("conf_file", to_path, None, section="Configuration", metavar="FILE",
           doc="File of 'key value' lines read as the fourth configuration source."),
    Option("strict_options", to_bool, False, section="Configuration", flag=True,
           doc="A script's unknown --words are an error (by default a likely typo, such as --prot, "
               "is a warning and every unknown word stays in sys.argv for the application)."),
    Option("log_level", to_int(0, 4), 2, section="Logging", metavar="0-4",
           doc="0 errors only, 1 warnings, 2 notices (default), 3 info, 4 debug."),
    Option("log_file", _log_file, None, section="Logging", metavar="TARGET",
           doc="A file path, STDERR, Sys::Syslog, logging:NAME (a stdlib logger) or module:callable; "
               "stderr when unset."),
    Option("log_config", _log_config, None, section="Logging", metavar="FILE",
           doc="A logging.config file (.json or .toml dict, or .ini) applied at start; netserver then "
               "logs through the 'netserver' logger, so its lines go where the application's do."),
    Option("log_function", _log_function, None, section="Logging", metavar="module:callable",
           doc="Called as f(level, message) for every log line instead of log_file; from Python, "
               "any callable or the name of a server method."),
    Option("syslog_logsock", to_optional_str, None, section="Logging", metavar="SOCK",
           doc="Syslog transport: unix (default, /dev/log), udp, tcp, a socket path or host:port."),
    Option("syslog_ident", to_str, "netserver", section="Logging", metavar="NAME",
           doc="Identity prefixed to syslog messages."),
    Option("syslog_logopt", to_str, "pid", section="Logging", metavar="OPTS",
           doc="Syslog options; 'pid' adds the process id to the ident."),
    Option("syslog_facility", _facility, "daemon", section="Logging", metavar="FACILITY",
           doc="Syslog facility name."),
    # -- binding --
    Option("port", _port, [20203], multi=True, section="Binding", metavar="SPEC",
           doc="Port to bind: 20203, host:port/proto/IPvN, 'host, port, proto', "
               "/path|unix, 0 for any free port."),
    Option("host", to_str, ["*"], multi=True, section="Binding", metavar="HOST",
           doc="Default host for ports that name none; '*' is every local address."),
    Option("ipv", _ipv, ["*"], multi=True, section="Binding", metavar="4|6|*",
           doc="IP version for ports that name none: 4, 6 or * (whatever the host resolves to)."),
    Option("proto", _proto, ["tcp"], multi=True, section="Binding", metavar="PROTO",
           doc="Default protocol for ports that name none: tcp, udp, unix, unixdgram, ssl."),
    Option("listen", to_int(1), somaxconn(), section="Binding", metavar="N",
           doc="Listen backlog; defaults to the kernel's maximum (net.core.somaxconn)."),
    # -- access control --
    Option("reverse_lookups", switch_or(*REVERSE_LOOKUPS), "0", section="Access control",
           metavar="0|1|double…",
           doc="Look up the peer's host name; 'double*' also requires it to resolve back to the peer."),
    Option("double_reverse_lookups", switch_or("detail", "autofail", "debug"), "0",
           section="Access control", metavar="MODE",
           doc="Deny peers whose reverse name does not resolve forward to their address."),
    Option("allow", _checked(compile_patterns), [], multi=True, section="Access control",
           metavar="REGEX", doc="Regex the peer address (or confirmed host name) must match."),
    Option("deny", _checked(compile_patterns), [], multi=True, section="Access control",
           metavar="REGEX", doc="Regex that refuses a peer address (or confirmed host name)."),
    Option("cidr_allow", _checked(parse_cidr_list), [], multi=True, section="Access control",
           metavar="CIDR", doc="CIDR block(s) the peer must be in; IPv4 and IPv6 may be mixed."),
    Option("cidr_deny", _checked(parse_cidr_list), [], multi=True, section="Access control",
           metavar="CIDR", doc="CIDR block(s) refused; checked before any allow rule."),
    # -- behind a load balancer --
    Option("proxy_protocol", choice("off", "v1", "v2", "auto"), "off", section="Proxy protocol",
           metavar="off|v1|v2|auto",
           doc="Expect HAProxy's PROXY header from peers in proxy_allow; its client address is used."),
    Option("proxy_allow", _checked(parse_cidr_list), [], multi=True,
           section="Proxy protocol", metavar="CIDR",
           doc="Peers trusted to send PROXY headers (required with proxy_protocol; none by default, "
               "since a trusted peer may claim any client address); from anyone else no header "
               "is honoured."),
    # -- daemon --
    Option("pid_file", to_path, None, section="Daemon", metavar="FILE",
           doc="Write the server's pid here; removed on exit."),
    Option("scoreboard_file", to_path, None, section="Daemon", metavar="FILE",
           doc="Where PreFork keeps its live pool for 'netserver status' (next to pid_file by default)."),
    Option("chroot", to_existing_dir, None, section="Daemon", metavar="DIR",
           doc="Directory to chroot to after binding."),
    Option("user", to_user, None, section="Daemon", metavar="USER",
           doc="User to become after binding (name or uid); unset, the server stays who it is "
               "(as root, with a warning)."),
    Option("group", to_group, None, section="Daemon", metavar="GROUP",
           doc="Group(s) to become after binding (names or gids)."),
    Option("background", to_bool, False, section="Daemon", flag=True,
           doc="Fork into the background after binding."),
    Option("setsid", to_bool, False, section="Daemon", flag=True,
           doc="Background and start a new session (implies background)."),
    # -- processes and signals --
    Option("no_close_by_child", to_bool, False, section="Processes", flag=True,
           doc="A child may not shut the whole server down."),
    Option("no_client_stdout", to_bool, True, section="Processes", flag=True,
           doc="Leave fds 0/1 alone; set 0 to point stdin/stdout at the client while it is served."),
    Option("leave_children_open_on_hup", to_bool, False, section="Processes", flag=True,
           doc="On HUP, let children of the old image run on instead of retiring them."),
    Option("sig_passthrough", to_signal_names, [], multi=True, section="Processes", metavar="SIGNALS",
           doc="Signals forwarded to the children (names, comma separated)."),
)
