"""HTTP errors that carry the status to answer with."""

from __future__ import annotations

__all__ = ["HTTPError", "REASONS"]

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
    413: "Content Too Large", 414: "URI Too Long", 417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


class HTTPError(Exception):
    """Answer ``status`` and close the connection; ``detail`` goes to the log."""

    def __init__(self, status: int, detail: str = ""):
        super().__init__(f"{status} {REASONS.get(status, '')}: {detail}".rstrip(": "))
        self.status = status
        self.detail = detail
