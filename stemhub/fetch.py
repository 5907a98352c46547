"""Safe downloads of user-given links: size caps, an SSRF guard, and no leaked tokens.

Anyone who can type ``/split <url>`` can make the hub open a connection, so every
outbound request to a user-given address goes through :class:`GuardedTransport`. Its
network layer resolves the host name once, refuses the request if any address is
loopback, private, link-local, multicast or otherwise not public, and then connects the
socket to the address it checked. Nothing resolves the name a second time, so a DNS
answer that changes between the check and the connect (DNS rebinding) cannot steer the
socket; TLS still verifies the certificate and sends SNI for the host name, and the
``Host`` header keeps the name.

:func:`fetch_to_file` follows redirects itself, re-checking each hop, and sends the
caller's headers (a Slack bot token) only to the scheme, host and port of the link it
was given. The byte cap holds while streaming, not after: a server that lies about
``Content-Length`` or never stops sending is cut off as soon as the cap is passed.
"""

from __future__ import annotations

import asyncio
import email.message
import ipaddress
import logging
import math
import os
import re
import socket
import ssl
import tempfile
import urllib.parse
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import httpcore
import httpx

from stemhub.errors import ErrorCode, StemhubError

if TYPE_CHECKING:
    from stemhub.config import Settings

logger = logging.getLogger(__name__)

USER_AGENT = "stemhub-fetch/1"
MAX_URL_LENGTH = 8192

ProgressFn = Callable[[int, int | None], Awaitable[None]]
"""``progress(bytes_so_far, total_or_None)``, awaited while a download streams."""

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``resolve(host, port)`` -> IP address strings, raising OSError for an unknown name."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PROGRESS_STEP = 256 * 1024
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_HOST_CHARS = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+")
# The forms inet_aton() accepts besides dotted quads: 2130706433, 0x7f000001, 0177.0.0.1, 127.1
_LEGACY_IPV4 = re.compile(r"(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}", re.I)

_FORBIDDEN_MESSAGE = (
    "The link points to a private or local network address; the hub only fetches "
    "from public internet addresses."
)


_QUERY_IN_TEXT = re.compile(r"((?:https?://|/)[^\s'\"<>?#]*)\?[^\s'\"<>]*")


class _RedactQueries(logging.Filter):
    """Keep query strings (presigned signatures, tokens) out of httpx and httpcore logs.

    httpx logs each request's full URL at INFO; httpcore's DEBUG trace shows response
    headers, ``Location`` included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = _QUERY_IN_TEXT.sub("\\1?…", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


def _redact_library_logs() -> None:
    for name in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2"):
        library_logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactQueries) for f in library_logger.filters):
            library_logger.addFilter(_RedactQueries())


_redact_library_logs()


@dataclass(frozen=True)
class FetchPolicy:
    """What the hub may download and from where.

    ``allowed_hosts`` holds exact host names and IP addresses or CIDR blocks
    (``"nas.home"``, ``"10.1.2.0/24"``) that may be fetched even though they are private,
    for a hub that serves a LAN. ``timeout_s`` bounds each wait (connect, each read);
    ``total_timeout_s`` bounds a whole download, so a server that trickles one byte at a
    time cannot hold a worker forever.
    """

    max_bytes: int
    timeout_s: float = 60.0
    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    max_redirects: int = 5
    total_timeout_s: float | None = 1800.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            max_bytes=settings.max_upload_bytes,
            timeout_s=settings.fetch_timeout_s,
            allow_private=settings.allow_private_networks,
            allowed_hosts=frozenset(settings.allowed_hosts),
        )


@dataclass(frozen=True)
class FetchedFile:
    """A finished download: a file in ``dest_dir`` that the caller now owns."""

    path: Path
    size_bytes: int
    content_type: str | None
    filename: str | None
    final_url: str


def format_bytes(size: int) -> str:
    """A size as people read it: ``"120 MiB"``, ``"9.5 MiB"``, ``"800 KiB"`` (1 KiB = 1024 B)."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    if unit == "bytes":
        return f"{size} bytes"
    return f"{value:.0f} {unit}" if value >= 100 or value == int(value) else f"{value:.1f} {unit}"


def redact_url(url: str | httpx.URL) -> str:
    """The URL without credentials, query string or fragment, safe for messages and logs.

    Presigned links carry their signature in the query, and some platforms put tokens
    there, so the query is replaced by ``?…`` rather than shown.
    """
    try:
        parts = urllib.parse.urlsplit(str(url))
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<invalid link>"
    if ":" in host:
        host = f"[{host}]"
    query = "?…" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"


def check_url(url: str, policy: FetchPolicy) -> None:
    """Refuse a link before any network traffic: scheme, credentials, host form.

    Host names are checked again, after resolution, by :class:`GuardedTransport`; what
    this function can refuse without DNS it refuses here: ``localhost`` names and IP
    literals in every spelling (``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``).
    Raises ``UNSUPPORTED_SOURCE`` (not http/https), ``SOURCE_FORBIDDEN`` or
    ``INVALID_REQUEST``.
    """
    if len(url) > MAX_URL_LENGTH:
        raise StemhubError(ErrorCode.INVALID_REQUEST, "The link is too long.")
    url = url.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise StemhubError(ErrorCode.INVALID_REQUEST, "The link has spaces or control characters.")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise StemhubError(ErrorCode.INVALID_REQUEST, "The link is not a valid URL.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{scheme}:" if scheme else "this kind of link"
        raise StemhubError(
            ErrorCode.UNSUPPORTED_SOURCE,
            f"Only http:// and https:// links can be fetched, not {shown}.",
        )
    if parts.username is not None or parts.password is not None:
        raise StemhubError(
            ErrorCode.SOURCE_FORBIDDEN,
            "Links with a user name or password in them are not accepted; share a plain link.",
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise StemhubError(ErrorCode.INVALID_REQUEST, "The link has no host name.")
    if port == 0:
        raise StemhubError(ErrorCode.INVALID_REQUEST, "The link is not a valid URL.")
    literal = _literal_address(host)
    if literal is not None:
        if not _address_allowed(literal, host, policy):
            _refuse(url, f"literal address {literal}")
    elif _is_local_name(host) and not (policy.allow_private or _host_allowed(host, policy)):
        _refuse(url, "local host name")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise StemhubError(ErrorCode.INVALID_REQUEST, "The link is not a valid URL.") from exc
    if not _HOST_CHARS.fullmatch(parsed.raw_host.decode("ascii", "replace")):
        raise StemhubError(ErrorCode.INVALID_REQUEST, "The link's host name is not valid.")


def _literal_address(host: str) -> IPAddress | None:
    """The address a host string spells, in any form a resolver would accept."""
    candidate = urllib.parse.unquote(host).strip("[]")
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(candidate):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(candidate))
        except OSError:
            return None
    return None


def _is_local_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name in _LOCAL_NAMES or name.endswith(".localhost")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public_address(address: IPAddress) -> bool:
    """Whether ``address`` is on the public internet (and so safe to fetch from).

    IPv6 forms that carry an IPv4 address are judged by that address, so
    ``::ffff:127.0.0.1`` is loopback and a NAT64 address of a public server is public.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
        if address.teredo is not None or address.is_site_local:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


@lru_cache(maxsize=64)
def _allow_rules(allowed: frozenset[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in allowed:
        item = entry.strip().lower().strip("[]").rstrip(".")
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            names.add(item)
            continue
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
            bits = int(network.network_address) & 0xFFFFFFFF
            network = ipaddress.IPv4Network((bits, max(network.prefixlen - 96, 0)))
        networks.append(network)
    return frozenset(names), tuple(networks)


def _host_allowed(host: str, policy: FetchPolicy) -> bool:
    names, _ = _allow_rules(policy.allowed_hosts)
    return host.lower().strip("[]").rstrip(".") in names


def _address_allowed(address: IPAddress, host: str, policy: FetchPolicy) -> bool:
    if policy.allow_private or is_public_address(address) or _host_allowed(host, policy):
        return True
    _, networks = _allow_rules(policy.allowed_hosts)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in networks if address.version == net.version)


def _refuse(url: str | httpx.URL, why: str) -> NoReturn:
    logger.info("refused to fetch %s: %s", redact_url(url), why)
    raise StemhubError(
        ErrorCode.SOURCE_FORBIDDEN,
        _FORBIDDEN_MESSAGE,
        operator_message=(
            f"Refused {redact_url(url)} ({why}). Set STEMHUB_ALLOW_PRIVATE_NETWORKS or "
            "STEMHUB_ALLOWED_HOSTS to allow it."
        ),
    )


async def _system_resolve(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves once, vets every address, and connects to a vetted one."""

    def __init__(self, policy: FetchPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolve = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._vetted(host, port, timeout)
        failure: Exception = httpcore.ConnectError(f"no address to connect to for {host}")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def _vetted(self, host: str, port: int, limit_s: float | None) -> list[IPAddress]:
        shown = f"http://{host}:{port}/"
        if _is_local_name(host) and not (
            self._policy.allow_private or _host_allowed(host, self._policy)
        ):
            _refuse(shown, "local host name")
        literal = _literal_address(host)
        try:
            with anyio.fail_after(limit_s):
                answers = [str(literal)] if literal else await self._resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"could not resolve {host}") from exc
        addresses: list[IPAddress] = []
        for answer in answers:
            address = ipaddress.ip_address(answer.split("%", 1)[0])
            if not _address_allowed(address, host, self._policy):
                _refuse(shown, f"{host} resolves to non-public address {address}")
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise httpcore.ConnectError(f"could not resolve {host}")
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable through the guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


_EXCEPTIONS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.ProtocolError: httpx.ProtocolError,
}


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """Re-raise httpcore's exceptions as the httpx ones callers of a client expect."""
    try:
        yield
    except httpcore.ProxyError as exc:
        raise httpx.ProxyError(str(exc)) from exc
    except (
        httpcore.TimeoutException,
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.UnsupportedProtocol,
    ) as exc:
        for kind in type(exc).__mro__:
            if kind in _EXCEPTIONS:
                raise _EXCEPTIONS[kind](str(exc)) from exc
        raise httpx.TransportError(str(exc)) from exc


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, inner: AsyncIterable[bytes], close: Callable[[], Awaitable[None]]) -> None:
        self._inner = inner
        self._close = close

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._inner:
                yield part

    async def aclose(self) -> None:
        await self._close()


@lru_cache(maxsize=2)
def _ssl_context(verify: bool) -> ssl.SSLContext:
    """Loading the CA bundle takes tens of milliseconds; one context serves every download."""
    return httpx.create_ssl_context(verify=verify, trust_env=False)


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that only reaches addresses ``policy`` allows.

    Every request is checked with :func:`check_url`; every new connection resolves the
    host once, refuses it with ``SOURCE_FORBIDDEN`` if any address is not allowed, and
    connects to a checked address. ``resolver`` replaces the system resolver (a test's
    fake DNS, a resolver with its own cache); ``verify`` is as in httpx.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        max_connections: int = 20,
    ) -> None:
        self._policy = policy
        context = verify if isinstance(verify, ssl.SSLContext) else _ssl_context(verify)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            network_backend=_GuardedBackend(policy, resolver or _system_resolve),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_url(str(request.url), self._policy)
        stream = request.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError("GuardedTransport needs an async request body")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        body = response.stream
        if not isinstance(body, AsyncIterable):
            raise TypeError("httpcore returned a synchronous body to an async transport")
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(body, response.aclose),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def guarded_client(
    policy: FetchPolicy,
    *,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for user-given URLs other than downloads (webhook callbacks).

    Requests to refused addresses raise :class:`StemhubError` (``SOURCE_FORBIDDEN``), not
    an httpx error. Redirects are not followed unless ``follow_redirects=True`` is passed;
    when they are, each hop is vetted, but headers other than ``Authorization`` travel
    with them, so prefer :func:`fetch_to_file`'s hand-followed redirects for credentials.
    Environment proxies are ignored: a proxy would make the connect-time check moot.
    """
    if "transport" in kwargs or "mounts" in kwargs:
        raise TypeError("guarded_client makes its own transport; pass resolver or verify")
    kwargs.setdefault("timeout", httpx.Timeout(policy.timeout_s))
    kwargs.setdefault("follow_redirects", False)
    kwargs.setdefault("headers", {"User-Agent": USER_AGENT})
    kwargs["trust_env"] = False
    transport = GuardedTransport(policy, resolver=resolver, verify=verify)
    return httpx.AsyncClient(transport=transport, **kwargs)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host.rstrip("."), url.port or default)


async def fetch_to_file(
    url: str,
    dest_dir: Path,
    *,
    policy: FetchPolicy,
    headers: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FetchedFile:
    """Download ``url`` into a new file in ``dest_dir``, within ``policy``.

    ``headers`` go to the link's own scheme, host and port only; once a redirect leaves
    that origin they are not sent again, even if a later hop comes back. ``transport``
    replaces the guarded network layer (tests, an egress proxy); :func:`check_url` still
    vets every hop. On any failure the partial file is removed and a
    :class:`StemhubError` is raised: ``SOURCE_FORBIDDEN``, ``FILE_TOO_LARGE``,
    ``SOURCE_UNREACHABLE`` (``retryable`` for timeouts, broken connections, 429 and 5xx),
    ``INVALID_REQUEST`` or ``UNSUPPORTED_SOURCE``.
    """
    check_url(url, policy)
    await anyio.Path(dest_dir).mkdir(parents=True, exist_ok=True)
    visited = [httpx.URL(url.strip())]
    own_transport = transport is None
    active = transport or GuardedTransport(policy)
    try:
        async with asyncio.timeout(policy.total_timeout_s):
            return await _download(active, visited, dest_dir, policy, headers, progress)
    except TimeoutError as exc:
        limit = _format_seconds(policy.total_timeout_s or 0)
        message = f"The download took longer than {limit} and was stopped."
        raise _unreachable(message, exc, visited) from exc
    except httpx.TimeoutException as exc:
        message = f"The link did not answer within {_format_seconds(policy.timeout_s)}."
        raise _unreachable(message, exc, visited) from exc
    except httpx.ConnectError as exc:
        message = f"Could not connect to {visited[-1].host}."
        raise _unreachable(message, exc, visited) from exc
    except httpx.TransportError as exc:
        message = f"The connection to {visited[-1].host} broke off during the download."
        raise _unreachable(message, exc, visited) from exc
    finally:
        if own_transport:
            await active.aclose()


def _unreachable(message: str, exc: Exception, visited: list[httpx.URL]) -> StemhubError:
    return StemhubError(
        ErrorCode.SOURCE_UNREACHABLE,
        message,
        retryable=True,
        operator_message=f"{type(exc).__name__} fetching {redact_url(visited[-1])}",
    )


def _format_seconds(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 120 else f"{seconds:g} seconds"


async def _download(
    transport: httpx.AsyncBaseTransport,
    visited: list[httpx.URL],
    dest_dir: Path,
    policy: FetchPolicy,
    headers: Mapping[str, str] | None,
    progress: ProgressFn | None,
) -> FetchedFile:
    """Follow redirects by hand: each hop is vetted, credentials stay with the origin.

    The transport is called directly rather than through ``httpx.AsyncClient``: the client
    would parse each ``Location`` itself (failing on forms the guard should refuse) and
    log each full URL.
    """
    first = visited[0]
    credentials_ok = True
    timeout = httpx.Timeout(policy.timeout_s).as_dict()
    for _hop in range(policy.max_redirects + 1):
        url = visited[-1]
        credentials_ok = credentials_ok and _origin(url) == _origin(first)
        request = httpx.Request(
            "GET",
            url,
            headers=_request_headers(headers if credentials_ok else None),
            extensions={"timeout": timeout},
        )
        response = await transport.handle_async_request(request)
        response.request = request
        try:
            if response.status_code not in _REDIRECT_STATUSES:
                _raise_for_status(response, url)
                return await _save(response, visited, dest_dir, policy, progress)
            visited.append(_redirect_target(response, url, policy))
        finally:
            await response.aclose()
    raise StemhubError(
        ErrorCode.SOURCE_UNREACHABLE,
        f"The link redirected more than {policy.max_redirects} times.",
        operator_message=f"redirect chain from {redact_url(first)} too long",
    )


def _request_headers(extra: Mapping[str, str] | None) -> httpx.Headers:
    merged = httpx.Headers({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    merged.update(extra or {})
    return merged


def _redirect_target(
    response: httpx.Response, current: httpx.URL, policy: FetchPolicy
) -> httpx.URL:
    location = response.headers.get("location", "").strip()
    if not location:
        raise StemhubError(
            ErrorCode.SOURCE_UNREACHABLE,
            f"The link answered {response.status_code} (a redirect) without saying where to.",
        )
    target = urllib.parse.urljoin(str(current), location).split("#", 1)[0]
    check_url(target, policy)
    return httpx.URL(target)


def _raise_for_status(response: httpx.Response, url: httpx.URL) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    phrase = response.reason_phrase or httpx.codes.get_reason_phrase(status)
    retryable = status >= 500 or status in (408, 425, 429)
    retry_after = _retry_after(response.headers.get("retry-after"))
    raise StemhubError(
        ErrorCode.SOURCE_UNREACHABLE,
        f"The link answered {status} {phrase}.".replace(" .", "."),
        retryable=retryable,
        retry_after=retry_after,
        operator_message=f"{status} from {redact_url(url)}",
        details={"status": status},
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    with suppress(ValueError):
        seconds = float(value)
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def _too_large(size: int | None, policy: FetchPolicy) -> StemhubError:
    limit = format_bytes(policy.max_bytes)
    if size is None:
        message = f"The file is larger than the {limit} limit."
    else:
        message = f"The file is {format_bytes(size)}; the limit is {limit}."
    return StemhubError(ErrorCode.FILE_TOO_LARGE, message, details={"max_bytes": policy.max_bytes})


async def _save(
    response: httpx.Response,
    visited: list[httpx.URL],
    dest_dir: Path,
    policy: FetchPolicy,
    progress: ProgressFn | None,
) -> FetchedFile:
    declared = _content_length(response)
    if declared is not None and declared > policy.max_bytes:
        raise _too_large(declared, policy)
    filename = _filename(response.headers.get("content-disposition"), visited)
    suffix = _safe_suffix(filename)
    handle, name = tempfile.mkstemp(prefix="fetch-", suffix=suffix, dir=dest_dir)
    path = Path(name)
    received = 0
    reported = 0
    try:
        # the descriptor mkstemp opened, wrapped on the loop: opening the file again in a
        # worker thread (anyio.open_file) dropped it unclosed when a cancel landed meanwhile
        async with anyio.wrap_file(os.fdopen(handle, "wb")) as out:
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > policy.max_bytes:
                    raise _too_large(None, policy)
                await out.write(chunk)
                if progress is not None and received - reported >= _PROGRESS_STEP:
                    reported = received
                    await progress(received, declared)
        if received == 0:
            raise StemhubError(ErrorCode.SOURCE_UNREACHABLE, "The link returned an empty file.")
        if progress is not None and received != reported:
            await progress(received, declared)
    except BaseException:
        _discard(path)
        raise
    content_type = response.headers.get("content-type")
    return FetchedFile(
        path=path,
        size_bytes=received,
        content_type=content_type.split(";", 1)[0].strip().lower() if content_type else None,
        filename=filename,
        final_url=str(visited[-1]),
    )


def _discard(path: Path) -> None:
    """Remove a partial download; synchronous so a cancelled task still gets it done."""
    path.unlink(missing_ok=True)


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


def _filename(disposition: str | None, visited: list[httpx.URL]) -> str | None:
    """The name the server gave, else the first URL path segment that looks like a file."""
    if disposition:
        # RFC 6266: an encoded filename* wins over a plain filename.
        extended = re.search(r"filename\*\s*=\s*([^;]+)", disposition, re.IGNORECASE)
        message = email.message.Message()
        message["content-disposition"] = (
            f"attachment; filename*={extended.group(1)}" if extended else disposition
        )
        given = message.get_filename()
        cleaned = _clean_filename(given) if given else None
        if cleaned:
            return cleaned
    names = [_clean_filename(PurePosixPath(u.path).name) for u in visited]
    names = [n for n in names if n]
    with_extension = [n for n in names if _safe_suffix(n)]
    return (with_extension or names or [None])[0]


def _clean_filename(name: str) -> str | None:
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(ch for ch in base if ch.isprintable() and ch not in "\"'")
    base = base.strip().lstrip(".").strip()
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = f"{stem[:190]}.{ext[:9]}" if dot and len(ext) <= 9 else base[:200]
    return base or None


def _safe_suffix(filename: str | None) -> str:
    if not filename or "." not in filename:
        return ""
    ext = filename.rsplit(".", 1)[1].lower()
    return f".{ext}" if re.fullmatch(r"[a-z0-9]{1,5}", ext) else ""


__all__ = [
    "FetchPolicy",
    "FetchedFile",
    "GuardedTransport",
    "ProgressFn",
    "Resolver",
    "check_url",
    "fetch_to_file",
    "format_bytes",
    "guarded_client",
    "is_public_address",
    "redact_url",
]
