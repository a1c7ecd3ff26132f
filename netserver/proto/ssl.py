"""SSL/TLS listeners (``port 8443/ssl``, ``proto ssl``) on the stdlib ``ssl`` module.

Accepting wraps the connection without any I/O; the handshake happens where
the connection is served — in the child, the worker thread, or the single
process — under ``SSL_handshake_timeout``, never in a parent's accept loop,
so a client that connects and says nothing holds up nobody but itself
(CVE-2023-38200 was a server doing it the other way round).  The context is
built when the listener is planned, so a missing, unreadable or mismatched
key or certificate is an error before the server binds; a HUP builds it
again from the files, so renewed certificates are picked up.
"""

from __future__ import annotations

import os

from ..options import Option
from ..options.validators import choice, to_bool, to_dotted, to_float, to_optional_str, to_readable_file
from .tcp import TCP

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Tuple

__all__ = ["SSL", "build_context", "handshake"]

VERIFY_MODES = {
    "none": "CERT_NONE", "0": "CERT_NONE", "ssl_verify_none": "CERT_NONE",
    "peer": "CERT_OPTIONAL", "1": "CERT_OPTIONAL", "optional": "CERT_OPTIONAL",
    "ssl_verify_peer": "CERT_OPTIONAL",
    "require": "CERT_REQUIRED", "required": "CERT_REQUIRED", "3": "CERT_REQUIRED", "2": "CERT_REQUIRED",
    "ssl_verify_fail_if_no_peer_cert": "CERT_REQUIRED",
    "ssl_verify_peer|ssl_verify_fail_if_no_peer_cert": "CERT_REQUIRED",
}
VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def _verify_mode(value: Any) -> str:
    key = str(value).strip().lower().replace(" ", "")
    if key not in VERIFY_MODES:
        raise ValueError("must be none, peer (ask for a client certificate) or require")
    return VERIFY_MODES[key]


def _shown_mode(value: str) -> str:
    """``CERT_REQUIRED`` → ``require``: the canonical value as the user types it."""
    return {"CERT_NONE": "none", "CERT_OPTIONAL": "peer", "CERT_REQUIRED": "require"}.get(value, value)


def _existing_dir(value: Any) -> str:
    path = os.path.abspath(str(value))
    if not os.path.isdir(path):
        raise ValueError("no such directory")
    return path


class SSL(TCP):
    """TCP with TLS; the handshake is left to the process that serves the connection."""

    proto = "ssl"
    label = "SSL"

    OPTIONS = (
        Option("SSL_cert_file", to_readable_file, None, section="SSL", metavar="FILE",
               doc="Certificate chain (PEM) for ssl listeners."),
        Option("SSL_key_file", to_readable_file, None, section="SSL", metavar="FILE",
               doc="Private key (PEM); defaults to SSL_cert_file."),
        Option("SSL_key_password", to_optional_str, None, section="SSL", metavar="PASSWORD",
               doc="Password of an encrypted private key."),
        Option("SSL_passwd_cb", to_dotted, None, section="SSL", metavar="module:callable",
               doc="Callable returning the private key's password (instead of SSL_key_password)."),
        Option("SSL_ca_file", to_readable_file, None, section="SSL", metavar="FILE",
               doc="CA certificates (PEM) that client certificates are verified against."),
        Option("SSL_ca_path", _existing_dir, None, section="SSL", metavar="DIR",
               doc="Directory of hashed CA certificates, as for SSL_ca_file."),
        Option("SSL_verify_mode", _verify_mode, "CERT_NONE", section="SSL", metavar="none|peer|require",
               doc="Client certificates: none, peer (verified if sent) or require.", show=_shown_mode),
        Option("SSL_cipher_list", to_optional_str, None, section="SSL", metavar="CIPHERS",
               doc="OpenSSL cipher list for TLS 1.2 and below."),
        Option("SSL_version", choice(*VERSIONS), "TLSv1.2", section="SSL", metavar="VERSION",
               doc="Oldest TLS version accepted."),
        Option("SSL_handshake_timeout", to_float, 10.0, section="SSL", metavar="SECONDS",
               doc="Time a client has to complete the TLS handshake."),
        Option("SSL_honor_cipher_order", to_bool, False, section="SSL", flag=True,
               doc="Prefer the server's cipher order to the client's (IO::Socket::SSL's name)."),
        Option("SSL_ecdh_curve", to_optional_str, None, section="SSL", metavar="CURVE",
               doc="Elliptic curve for ECDH key exchange (e.g. prime256v1)."),
        Option("SSL_dh_file", to_readable_file, None, section="SSL", metavar="FILE",
               doc="Diffie-Hellman parameters (PEM) for DHE key exchange."),
    )

    def __init__(self, target: Any, config: Any = None):
        super().__init__(target, config)
        if target.spec.ssl:  # this port's own SSL_* keys (a dict port specification)
            config = _PortSSL(config, target.spec.ssl)
        self.context = build_context(config)
        self.handshake_timeout = config.SSL_handshake_timeout if config is not None else 10.0

    def get_request(self) -> Tuple[Any, Any]:
        conn, client_address = self._bound_socket().accept()
        return self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False), client_address


class _PortSSL:
    """The server's options with one port's SSL_* keys over them (each checked like the option)."""

    def __init__(self, config: Any, keys: Any):
        self._config = config
        options = {option.name: option for option in SSL.OPTIONS}
        self._own = {}
        for name, raw in keys:
            if name not in options:
                raise ValueError(f"{name}: not an SSL option netserver passes to Python's ssl module "
                                 f"(one of {', '.join(sorted(options))})")
            try:
                self._own[name] = options[name].parse(raw, "port specification")
            except Exception as exc:  # OptionError: name, value, source and reason
                raise ValueError(str(exc)) from None

    def __getattr__(self, name: str) -> Any:
        own = self.__dict__.get("_own", {})
        if name in own:
            return own[name]
        return getattr(self._config, name)


def _encrypted(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return b"ENCRYPTED" in fh.read(4096)
    except OSError:
        return False


def build_context(config: Any) -> Any:
    """An ``ssl.SSLContext`` from the SSL_* options; ``ValueError`` naming what is wrong."""
    import ssl

    cert = getattr(config, "SSL_cert_file", None)
    if not cert:
        raise ValueError("an ssl listener needs SSL_cert_file (and SSL_key_file)")
    key = config.SSL_key_file or cert
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = getattr(ssl.TLSVersion, config.SSL_version.replace(".", "_"))
    password = config.SSL_key_password
    if config.SSL_passwd_cb is not None:
        password = config.SSL_passwd_cb
    password_given = password is not None
    if password is None:
        def password() -> str:  # never let OpenSSL prompt on a terminal
            raise ValueError(f"SSL_key_file {key} is encrypted: give SSL_key_password or SSL_passwd_cb")
    try:
        context.load_cert_chain(cert, key, password)
    except ssl.SSLError as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        if reason == "KEY_VALUES_MISMATCH":
            raise ValueError(f"SSL_key_file {key} does not match SSL_cert_file {cert}") from None
        if password_given and _encrypted(key):  # OpenSSL says only "PEM lib"
            raise ValueError(f"SSL_key_file {key}: wrong password (SSL_key_password or SSL_passwd_cb)") from None
        raise ValueError(f"cannot load SSL_cert_file {cert} / SSL_key_file {key}: {reason}") from None
    except OSError as exc:
        raise ValueError(f"cannot load SSL_cert_file {cert} / SSL_key_file {key}: {exc.strerror or exc}") from None
    if config.SSL_ca_file or config.SSL_ca_path:
        try:
            context.load_verify_locations(cafile=config.SSL_ca_file, capath=config.SSL_ca_path)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"cannot load SSL_ca_file/SSL_ca_path: {exc}") from None
    context.verify_mode = getattr(ssl, config.SSL_verify_mode)
    if context.verify_mode != ssl.CERT_NONE and not (config.SSL_ca_file or config.SSL_ca_path):
        raise ValueError("SSL_verify_mode asks for client certificates: give SSL_ca_file or SSL_ca_path")
    if config.SSL_honor_cipher_order:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if config.SSL_ecdh_curve:
        try:
            context.set_ecdh_curve(config.SSL_ecdh_curve)
        except ValueError:
            raise ValueError(f"SSL_ecdh_curve {config.SSL_ecdh_curve!r}: unknown curve") from None
    if config.SSL_dh_file:
        try:
            context.load_dh_params(config.SSL_dh_file)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"cannot load SSL_dh_file {config.SSL_dh_file}: {exc}") from None
    if config.SSL_cipher_list:
        try:
            context.set_ciphers(config.SSL_cipher_list)
        except ssl.SSLError:
            raise ValueError(f"SSL_cipher_list {config.SSL_cipher_list!r} selects no cipher") from None
    return context


def handshake(conn: Any, timeout: float) -> None:
    """Complete the TLS handshake of an accepted connection within ``timeout`` seconds."""
    previous = conn.gettimeout()
    conn.settimeout(timeout)
    conn.do_handshake()
    conn.settimeout(previous)
