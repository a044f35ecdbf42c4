"""Outbound HTTP destinations that staff configure (webhooks, and any other HTTP-based channel).

A destination URL is resolved **once**; every address it resolves to must be public
(``is_global``) or inside an operator-admitted network (``WEBHOOK_ALLOWED_NETWORKS``), and the
connection then goes to that very address, with the URL's host name sent for TLS (SNI and
certificate check) and in the ``Host`` header. Resolving again at connect time would let a DNS
answer that changes between the check and the connection (rebinding) steer the request inside
the clinic's network. Redirects are never followed: a 3xx is a failed delivery (a redirect could
point anywhere, or downgrade https to http).

Errors carry a category (refused destination, timeout, connection failed, TLS error, HTTP
status), never the body of a reply: an internal server's answer must not be shown to admins.

Usage::

    destination = resolve(url)             # raises RefusedDestination / Transient
    status = post(destination, body, headers)   # or open_connection(destination) for other verbs
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from . import Permanent, Transient

DEFAULT_TIMEOUT_SECONDS = 10


class RefusedDestination(Permanent):
    """The URL may not be posted to (scheme, or an address outside the admitted networks)."""

    def __init__(self, why: str):
        super().__init__(f"refused destination: {why}")


@dataclass(frozen=True)
class Destination:
    """A checked URL pinned to the one address it was checked against."""

    scheme: str
    host: str
    port: int
    path: str
    address: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def allowed_networks():
    return [ipaddress.ip_network(cidr, strict=False) for cidr in getattr(settings, "WEBHOOK_ALLOWED_NETWORKS", [])]


def address_allowed(address: str) -> bool:
    """Public addresses, or an operator-admitted network; everything goes with WEBHOOK_ALLOW_PRIVATE."""
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowed_networks()):
        return True
    # is_global, not "not is_private": 100.64.0.0/10 (carrier-grade NAT, cloud metadata on some
    # providers) is neither private nor global.
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def resolve(url: str) -> Destination:
    """Check ``url`` and pin it to one checked address. Raises RefusedDestination or Transient."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (settings.WEBHOOK_ALLOW_PRIVATE and parts.scheme == "http"):
        raise RefusedDestination("https only")
    if not parts.hostname:
        raise RefusedDestination("the URL has no host")
    if parts.username or parts.password:
        raise RefusedDestination("no credentials in the URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedDestination("invalid port") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Transient(f"cannot resolve {parts.hostname}") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise Transient(f"cannot resolve {parts.hostname}")
    # Every answer must pass, not just the first: the resolver's order is not ours to rely on.
    for address in addresses:
        if not address_allowed(address):
            raise RefusedDestination(f"{parts.hostname} resolves to an address that is not public")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Destination(parts.scheme, parts.hostname, port, path, addresses[0])


def ssl_context() -> ssl.SSLContext:
    """Certificate checks on; an on-premises install may add its own CA (``WEBHOOK_CA_FILE``)."""
    context = ssl.create_default_context()
    ca_file = getattr(settings, "WEBHOOK_CA_FILE", "")
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, destination: Destination, timeout: float):
        super().__init__(destination.host, destination.port, timeout=timeout)
        self._pinned = destination.address

    def connect(self):
        self.sock = socket.create_connection((self._pinned, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, destination: Destination, timeout: float):
        super().__init__(destination.host, destination.port, timeout=timeout, context=ssl_context())
        self._pinned = destination.address

    def connect(self):
        sock = socket.create_connection((self._pinned, self.port), self.timeout)
        # The checked address, but the URL's host name for SNI and the certificate check.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def open_connection(destination: Destination, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> http.client.HTTPConnection:
    """An http.client connection to the pinned address (sends ``Host: <url host>``; no redirects)."""
    if destination.scheme == "https":
        return _PinnedHTTPSConnection(destination, timeout)
    return _PinnedHTTPConnection(destination, timeout)


def post(destination: Destination, body: bytes, headers: dict, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> int:
    """POST ``body``; return the 2xx status. Raises Transient (timeout, connection, TLS, 429, 5xx)
    or Permanent (3xx: redirects are not followed; other 4xx)."""
    connection = open_connection(destination, timeout)
    try:
        connection.request("POST", destination.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(1024)  # read a little so the server sees a clean close; never shown
        status = response.status
    except TimeoutError:
        raise Transient("timeout") from None
    except ssl.SSLError as exc:
        raise Transient(f"TLS error ({exc.reason or 'handshake failed'})") from None
    except (OSError, http.client.HTTPException) as exc:
        raise Transient(f"connection failed ({type(exc).__name__})") from None
    finally:
        connection.close()
    return check_status(status)


def check_status(status: int) -> int:
    if 200 <= status < 300:
        return status
    if 300 <= status < 400:
        raise Permanent(f"HTTP {status}: redirects are not followed")
    if status == 429 or status >= 500:
        raise Transient(f"HTTP {status}")
    raise Permanent(f"HTTP {status}")
