"""Downloads of user-given links, against real HTTP servers on loopback.

Loopback is itself a forbidden destination, so the tests that download allow private
networks (``allow_private=True`` or ``allowed_hosts``) and the refusal tests do not.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import socket
import ssl
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import trustme

from stemhub.config import Settings
from stemhub.errors import ErrorCode, StemhubError
from stemhub.fetch import (
    FetchPolicy,
    GuardedTransport,
    Resolver,
    check_url,
    fetch_to_file,
    format_bytes,
    guarded_client,
    is_public_address,
    redact_url,
)
from tests.core._fetch_app import Recorder, make_app, payload
from tests.core._servers import RunningServer, serve

MB = 1024 * 1024
OPEN = FetchPolicy(max_bytes=10 * MB, timeout_s=5.0, allow_private=True)
CLOSED = FetchPolicy(max_bytes=10 * MB, timeout_s=5.0)


@pytest.fixture(scope="module")
def recorders() -> tuple[Recorder, Recorder]:
    return Recorder(), Recorder()


@pytest.fixture
def recorder(recorders: tuple[Recorder, Recorder]) -> Recorder:
    recorders[0].reset()
    return recorders[0]


@pytest.fixture
def other_recorder(recorders: tuple[Recorder, Recorder]) -> Recorder:
    recorders[1].reset()
    return recorders[1]


@pytest.fixture(scope="module")
def server(recorders: tuple[Recorder, Recorder]) -> Iterator[RunningServer]:
    with serve(make_app(recorders[0])) as running:
        yield running


@pytest.fixture(scope="module")
def other(recorders: tuple[Recorder, Recorder]) -> Iterator[RunningServer]:
    with serve(make_app(recorders[1])) as running:
        yield running


def fixed_resolver(mapping: dict[str, Sequence[str]], calls: list[str] | None = None) -> Resolver:
    """A DNS stand-in: the guard's resolver hook, answering from a table."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(host)
        try:
            return mapping[host]
        except KeyError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None

    return resolve


def leftovers(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.exists() else []


async def test_download_streams_to_a_file_with_its_facts(
    server: RunningServer, tmp_path: Path
) -> None:
    seen: list[tuple[int, int | None]] = []

    async def progress(done: int, total: int | None) -> None:
        seen.append((done, total))

    got = await fetch_to_file(
        f"{server.url}/audio/My%20Song.mp3?size=700000",
        tmp_path,
        policy=OPEN,
        progress=progress,
    )

    assert got.path.parent == tmp_path
    assert got.path.read_bytes() == payload(700_000)
    assert got.size_bytes == 700_000
    assert got.content_type == "audio/mpeg"
    assert got.filename == "My Song.mp3"
    assert got.path.suffix == ".mp3"
    assert got.final_url == f"{server.url}/audio/My%20Song.mp3?size=700000"
    assert seen[-1] == (700_000, 700_000)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ("attachment; filename*=UTF-8''%C3%A9t%C3%A9%20mix.flac", "été mix.flac"),
        ('attachment; filename="take 2.wav"', "take 2.wav"),
        ("attachment; filename=\"old.mp3\"; filename*=UTF-8''n%C3%AAw.mp3", "nêw.mp3"),
        ('attachment; filename="../../etc/passwd.mp3"', "passwd.mp3"),
        ('attachment; filename="..\\\\evil\\\\.bashrc"', "bashrc"),
    ],
)
async def test_filename_comes_from_content_disposition_and_is_made_safe(
    server: RunningServer, tmp_path: Path, disposition: str, expected: str
) -> None:
    url = f"{server.url}/audio/download?disposition={quote(disposition)}"

    got = await fetch_to_file(url, tmp_path, policy=OPEN)

    assert got.filename == expected
    assert got.path.parent == tmp_path


async def test_filename_falls_back_to_the_redirect_target_that_names_a_file(
    server: RunningServer, tmp_path: Path
) -> None:
    url = f"{server.url}/to?url={quote('/audio/track07.ogg')}"

    got = await fetch_to_file(url, tmp_path, policy=OPEN)

    assert got.filename == "track07.ogg"
    assert got.final_url == f"{server.url}/audio/track07.ogg"


async def test_byte_cap_stops_an_endless_stream_mid_way(
    server: RunningServer, recorder: Recorder, tmp_path: Path
) -> None:
    policy = FetchPolicy(max_bytes=1 * MB, timeout_s=5.0, allow_private=True)

    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(f"{server.url}/endless", tmp_path, policy=policy)

    assert caught.value.code is ErrorCode.FILE_TOO_LARGE
    assert caught.value.message == "The file is larger than the 1 MiB limit."
    assert leftovers(tmp_path) == []
    assert await asyncio.to_thread(recorder.stream_closed.wait, 5)
    # The server gave up because the client hung up, long before a download could finish.
    assert recorder.streamed_bytes < 64 * MB


@pytest.mark.parametrize(
    ("declared", "expected_size"),
    [
        (b"", None),  # no length at all: the body runs until the server hangs up
        (b"Content-Length: 1000\r\n", 1000),  # claims 1000 bytes, then keeps sending
    ],
)
async def test_byte_cap_holds_when_the_server_lies_about_its_length(
    tmp_path: Path, declared: bytes, expected_size: int | None
) -> None:
    policy = FetchPolicy(max_bytes=1 * MB, timeout_s=5.0, allow_private=True)
    hung_up = asyncio.Event()

    async def liar(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\n" + declared + b"\r\n")
        block = payload(64 * 1024)
        try:
            for _ in range(2000):  # 128 MB at most, far past the cap
                writer.write(block)
                await writer.drain()
        except ConnectionError:
            hung_up.set()
        finally:
            writer.close()

    raw = await asyncio.start_server(liar, "127.0.0.1", 0)
    port = raw.sockets[0].getsockname()[1]
    try:
        if expected_size is None:
            with pytest.raises(StemhubError) as caught:
                await fetch_to_file(f"http://127.0.0.1:{port}/x.wav", tmp_path, policy=policy)
            assert caught.value.code is ErrorCode.FILE_TOO_LARGE
            assert leftovers(tmp_path) == []
        else:
            got = await fetch_to_file(f"http://127.0.0.1:{port}/x.wav", tmp_path, policy=policy)
            assert got.size_bytes == expected_size
            assert got.path.read_bytes() == payload(64 * 1024)[:expected_size]
        await asyncio.wait_for(hung_up.wait(), timeout=10)
    finally:
        raw.close()
        await raw.wait_closed()


async def test_declared_size_over_the_cap_is_refused_before_the_body(
    server: RunningServer, recorder: Recorder, tmp_path: Path
) -> None:
    policy = FetchPolicy(max_bytes=1 * MB, timeout_s=5.0, allow_private=True)

    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(f"{server.url}/endless?declare={120 * MB}", tmp_path, policy=policy)

    assert caught.value.code is ErrorCode.FILE_TOO_LARGE
    assert caught.value.message == "The file is 120 MiB; the limit is 1 MiB."
    assert caught.value.http_status == 413
    assert leftovers(tmp_path) == []


async def test_redirect_chain_is_followed(
    server: RunningServer, recorder: Recorder, tmp_path: Path
) -> None:
    got = await fetch_to_file(f"{server.url}/redirect/3", tmp_path, policy=OPEN)

    assert got.final_url == f"{server.url}/audio/song.mp3"
    assert got.filename == "song.mp3"
    assert recorder.paths() == [
        "/redirect/3",
        "/redirect/2",
        "/redirect/1",
        "/redirect/0",
        "/audio/song.mp3",
    ]


async def test_too_many_redirects_fail(
    server: RunningServer, recorder: Recorder, tmp_path: Path
) -> None:
    policy = FetchPolicy(max_bytes=MB, allow_private=True, max_redirects=2)

    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(f"{server.url}/redirect/5", tmp_path, policy=policy)

    assert caught.value.code is ErrorCode.SOURCE_UNREACHABLE
    assert "more than 2 times" in caught.value.message
    assert len(recorder.requests) == 3
    assert leftovers(tmp_path) == []


async def test_credentials_stay_on_a_same_host_redirect(
    server: RunningServer, recorder: Recorder, tmp_path: Path
) -> None:
    url = f"{server.url}/to?url={quote('/echo')}"

    got = await fetch_to_file(
        url, tmp_path, policy=OPEN, headers={"Authorization": "Bearer xoxb-same-host"}
    )

    assert got.path.read_text() == "Bearer xoxb-same-host"
    assert [r.headers.get("authorization") for r in recorder.requests] == [
        "Bearer xoxb-same-host",
        "Bearer xoxb-same-host",
    ]


async def test_credentials_are_dropped_on_a_redirect_to_another_port(
    server: RunningServer,
    other: RunningServer,
    recorder: Recorder,
    other_recorder: Recorder,
    tmp_path: Path,
) -> None:
    url = f"{server.url}/to?url={quote(other.url + '/echo')}"

    got = await fetch_to_file(
        url,
        tmp_path,
        policy=OPEN,
        headers={"Authorization": "Bearer xoxb-secret", "X-Api-Key": "k-secret"},
    )

    assert got.path.read_text() == "-"
    assert recorder.requests[0].headers["authorization"] == "Bearer xoxb-secret"
    assert "authorization" not in other_recorder.requests[0].headers
    assert "x-api-key" not in other_recorder.requests[0].headers


async def test_credentials_are_dropped_on_a_redirect_to_another_host_name(
    server: RunningServer, recorder: Recorder, tmp_path: Path
) -> None:
    # Same server, but "localhost" is another host than "127.0.0.1" as far as a token goes.
    elsewhere = f"http://localhost:{server.port}/to?url={quote(server.url + '/echo')}"
    url = f"{server.url}/to?url={quote(elsewhere)}"

    got = await fetch_to_file(
        url, tmp_path, policy=OPEN, headers={"Authorization": "Bearer xoxb-secret"}
    )

    # Dropped when the chain left the origin, and not restored when it came back.
    assert got.path.read_text() == "-"
    assert [r.headers.get("authorization") for r in recorder.requests] == [
        "Bearer xoxb-secret",
        None,
        None,
    ]
    assert recorder.requests[1].headers["host"] == f"localhost:{server.port}"


@pytest.mark.parametrize(
    "address",
    [
        "http://127.0.0.1:{port}/a.mp3",
        "http://127.8.9.10:{port}/a.mp3",
        "http://[::1]:{port}/a.mp3",
        "http://[::ffff:127.0.0.1]:{port}/a.mp3",
        "http://[::ffff:7f00:1]:{port}/a.mp3",
        "http://localhost:{port}/a.mp3",
        "http://LOCALHOST.:{port}/a.mp3",
        "http://api.localhost:{port}/a.mp3",
        "http://2130706433:{port}/a.mp3",
        "http://0x7f000001:{port}/a.mp3",
        "http://0177.0.0.1:{port}/a.mp3",
        "http://127.1:{port}/a.mp3",
        "http://0.0.0.0:{port}/a.mp3",
        "http://[::]:{port}/a.mp3",
        "http://10.0.0.1/a.mp3",
        "http://172.16.5.4/a.mp3",
        "http://192.168.1.1/a.mp3",
        "http://100.64.0.1/a.mp3",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/a.mp3",
        "http://[fc00::1]/a.mp3",
        "http://[fd12:3456::1]/a.mp3",
        "http://224.0.0.1/a.mp3",
        "http://[ff02::1]/a.mp3",
        "http://240.0.0.1/a.mp3",
        "http://255.255.255.255/a.mp3",
        "http://[64:ff9b::a00:1]/a.mp3",
        "http://[2002:7f00:1::]/a.mp3",
    ],
)
async def test_private_and_local_addresses_are_refused(
    server: RunningServer, recorder: Recorder, tmp_path: Path, address: str
) -> None:
    url = address.format(port=server.port)

    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(url, tmp_path, policy=CLOSED)

    assert caught.value.code is ErrorCode.SOURCE_FORBIDDEN
    assert "private or local network" in caught.value.message
    assert str(server.port) not in caught.value.message
    assert recorder.requests == []
    assert leftovers(tmp_path) == []


async def test_a_name_that_resolves_to_loopback_is_refused(
    server: RunningServer, recorder: Recorder, tmp_path: Path
) -> None:
    resolve = fixed_resolver({"music.example": ["127.0.0.1"]})

    async with GuardedTransport(CLOSED, resolver=resolve) as transport:
        with pytest.raises(StemhubError) as caught:
            await fetch_to_file(
                f"http://music.example:{server.port}/audio/a.mp3",
                tmp_path,
                policy=CLOSED,
                transport=transport,
            )

    assert caught.value.code is ErrorCode.SOURCE_FORBIDDEN
    assert "127.0.0.1" not in caught.value.message
    assert recorder.requests == []


async def test_one_private_answer_among_public_ones_refuses_the_name(
    server: RunningServer, recorder: Recorder, tmp_path: Path
) -> None:
    # Every answer is checked before any connection, whichever would be tried first.
    resolve = fixed_resolver({"cdn.example": ["127.0.0.1", "1.1.1.1"]})

    async with GuardedTransport(CLOSED, resolver=resolve) as transport:
        with pytest.raises(StemhubError) as caught:
            await fetch_to_file(
                f"http://cdn.example:{server.port}/audio/a.mp3",
                tmp_path,
                policy=CLOSED,
                transport=transport,
            )

    assert caught.value.code is ErrorCode.SOURCE_FORBIDDEN
    assert recorder.requests == []


async def test_connection_goes_to_the_checked_address_with_the_host_name_kept(
    server: RunningServer, recorder: Recorder, tmp_path: Path
) -> None:
    calls: list[str] = []
    resolve = fixed_resolver({"music.example": ["127.0.0.1"]}, calls)

    async with GuardedTransport(OPEN, resolver=resolve) as transport:
        got = await fetch_to_file(
            f"http://music.example:{server.port}/audio/a.mp3?size=1000",
            tmp_path,
            policy=OPEN,
            transport=transport,
        )

    assert got.path.read_bytes() == payload(1000)
    assert calls == ["music.example"]
    assert recorder.requests[0].headers["host"] == f"music.example:{server.port}"


async def test_loopback_is_reachable_when_private_networks_are_allowed(
    server: RunningServer, tmp_path: Path
) -> None:
    for url in (f"{server.url}/audio/a.mp3", f"http://localhost:{server.port}/audio/a.mp3"):
        got = await fetch_to_file(url, tmp_path, policy=OPEN)
        assert got.size_bytes == 100_000


@pytest.mark.parametrize("allowed", ["127.0.0.1", "127.0.0.0/8", "::ffff:127.0.0.0/104"])
async def test_allowed_hosts_open_one_private_address(
    server: RunningServer, tmp_path: Path, allowed: str
) -> None:
    policy = FetchPolicy(max_bytes=MB, allowed_hosts=frozenset({allowed}))

    got = await fetch_to_file(f"{server.url}/audio/a.mp3", tmp_path, policy=policy)

    assert got.size_bytes == 100_000


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/a.mp3",
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[::1]:{other}/audio/a.mp3",
        "http://localhost:{other}/audio/a.mp3",
        "http://2130706434:{other}/audio/a.mp3",
        "http://0177.0.0.2:{other}/audio/a.mp3",
        "http://127.0.0.2:{other}/audio/a.mp3",
    ],
)
async def test_redirect_from_an_allowed_server_to_a_private_address_is_refused(
    server: RunningServer,
    other: RunningServer,
    other_recorder: Recorder,
    tmp_path: Path,
    target: str,
) -> None:
    policy = FetchPolicy(max_bytes=MB, allowed_hosts=frozenset({"127.0.0.1"}))
    url = f"{server.url}/to?url={quote(target.format(other=other.port))}"

    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(url, tmp_path, policy=policy)

    assert caught.value.code is ErrorCode.SOURCE_FORBIDDEN
    assert other_recorder.requests == []
    assert leftovers(tmp_path) == []


async def test_a_host_allowed_by_name_does_not_open_its_address_to_other_names(
    server: RunningServer, recorder: Recorder, tmp_path: Path
) -> None:
    policy = FetchPolicy(max_bytes=MB, allowed_hosts=frozenset({"nas.home"}))
    resolve = fixed_resolver({"nas.home": ["127.0.0.1"]})
    first = f"http://nas.home:{server.port}"
    bounce = f"{first}/to?url={quote(server.url + '/audio/a.mp3')}"

    async with GuardedTransport(policy, resolver=resolve) as transport:
        got = await fetch_to_file(
            f"{first}/audio/a.mp3", tmp_path, policy=policy, transport=transport
        )
        assert got.size_bytes == 100_000
        with pytest.raises(StemhubError) as caught:
            await fetch_to_file(bounce, tmp_path, policy=policy, transport=transport)
    assert caught.value.code is ErrorCode.SOURCE_FORBIDDEN
    assert recorder.paths() == ["/audio/a.mp3", "/to"]


async def test_a_server_that_stalls_before_answering_times_out(
    server: RunningServer, tmp_path: Path
) -> None:
    policy = FetchPolicy(max_bytes=MB, timeout_s=0.3, allow_private=True)

    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(f"{server.url}/stall", tmp_path, policy=policy)

    assert caught.value.code is ErrorCode.SOURCE_UNREACHABLE
    assert caught.value.retryable
    assert caught.value.message == "The link did not answer within 0.3 seconds."
    assert leftovers(tmp_path) == []


async def test_a_server_that_stalls_mid_body_times_out_and_leaves_no_file(
    server: RunningServer, tmp_path: Path
) -> None:
    policy = FetchPolicy(max_bytes=MB, timeout_s=0.3, allow_private=True)

    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(f"{server.url}/stall-body", tmp_path, policy=policy)

    assert caught.value.code is ErrorCode.SOURCE_UNREACHABLE
    assert caught.value.retryable
    assert leftovers(tmp_path) == []


async def test_a_trickling_server_hits_the_total_time_limit(
    server: RunningServer, tmp_path: Path
) -> None:
    policy = FetchPolicy(max_bytes=MB, timeout_s=5, total_timeout_s=0.5, allow_private=True)

    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(f"{server.url}/trickle", tmp_path, policy=policy)

    assert caught.value.code is ErrorCode.SOURCE_UNREACHABLE
    assert caught.value.retryable
    assert caught.value.message == "The download took longer than 0.5 seconds and was stopped."
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("code", "message", "retryable"),
    [
        (404, "The link answered 404 Not Found.", False),
        (403, "The link answered 403 Forbidden.", False),
        (410, "The link answered 410 Gone.", False),
        (500, "The link answered 500 Internal Server Error.", True),
        (503, "The link answered 503 Service Unavailable.", True),
    ],
)
async def test_http_errors_become_source_unreachable(
    server: RunningServer, tmp_path: Path, code: int, message: str, retryable: bool
) -> None:
    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(f"{server.url}/status/{code}", tmp_path, policy=OPEN)

    assert caught.value.code is ErrorCode.SOURCE_UNREACHABLE
    assert caught.value.message == message
    assert caught.value.retryable is retryable
    assert leftovers(tmp_path) == []


async def test_too_many_requests_carries_retry_after(server: RunningServer, tmp_path: Path) -> None:
    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(f"{server.url}/status/429?retry_after=7", tmp_path, policy=OPEN)

    assert caught.value.retryable
    assert caught.value.retry_after == 7.0


async def test_a_closed_port_is_unreachable_and_retryable(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(f"http://127.0.0.1:{port}/a.mp3", tmp_path, policy=OPEN)

    assert caught.value.code is ErrorCode.SOURCE_UNREACHABLE
    assert caught.value.retryable
    assert caught.value.message == "Could not connect to 127.0.0.1."


async def test_an_empty_body_is_an_error(server: RunningServer, tmp_path: Path) -> None:
    with pytest.raises(StemhubError) as caught:
        await fetch_to_file(f"{server.url}/empty", tmp_path, policy=OPEN)

    assert caught.value.code is ErrorCode.SOURCE_UNREACHABLE
    assert leftovers(tmp_path) == []


async def test_no_secret_reaches_messages_or_logs(
    server: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-token-value"
    failures: list[StemhubError] = []
    attempts = [
        (f"{server.url}/status/404?token={secret}", OPEN),
        (f"{server.url}/to?url={quote('http://10.0.0.1/x?sig=' + secret)}", CLOSED),
        (f"{server.url}/to?url={quote('/status/404?sig=' + secret)}&k={secret}", OPEN),
        (f"http://10.0.0.1/a.mp3?token={secret}", CLOSED),
        (f"{server.url}/redirect/9?token={secret}", FetchPolicy(1000, allow_private=True)),
        (f"{server.url}/endless?token={secret}", FetchPolicy(1000, allow_private=True)),
        (f"http://user:{secret}@example.com/a.mp3", CLOSED),
    ]
    for url, policy in attempts:
        with pytest.raises(StemhubError) as caught:
            await fetch_to_file(
                url, tmp_path, policy=policy, headers={"Authorization": f"Bearer {secret}"}
            )
        failures.append(caught.value)

    for failure in failures:
        shown = " ".join(
            [str(failure), repr(failure), failure.operator_message or "", str(failure.details)]
        )
        assert secret not in shown
    assert secret not in caplog.text


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/a.mp3", ErrorCode.UNSUPPORTED_SOURCE),
        ("file:///etc/passwd", ErrorCode.UNSUPPORTED_SOURCE),
        ("gopher://example.com/", ErrorCode.UNSUPPORTED_SOURCE),
        ("example.com/a.mp3", ErrorCode.UNSUPPORTED_SOURCE),
        ("http://user:pw@example.com/a.mp3", ErrorCode.SOURCE_FORBIDDEN),
        ("http://:pw@example.com/a.mp3", ErrorCode.SOURCE_FORBIDDEN),
        ("http:///a.mp3", ErrorCode.INVALID_REQUEST),
        ("http://example.com:99999/a.mp3", ErrorCode.INVALID_REQUEST),
        ("http://exa mple.com/a.mp3", ErrorCode.INVALID_REQUEST),
        ("http://example.com/" + "a" * 9000, ErrorCode.INVALID_REQUEST),
    ],
)
def test_check_url_refuses_what_is_not_a_plain_web_link(url: str, code: ErrorCode) -> None:
    with pytest.raises(StemhubError) as caught:
        check_url(url, OPEN)

    assert caught.value.code is code
    assert "pw" not in caught.value.message


@pytest.mark.parametrize(
    "url",
    ["https://example.com/a.mp3", "http://93.184.215.14/x", "https://[2606:4700::1111]/x"],
)
def test_check_url_passes_public_links(url: str) -> None:
    check_url(url, CLOSED)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("64:ff9b::808:808", True),
        ("2002:808:808::1", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("100.100.100.100", False),
        ("169.254.169.254", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::7f00:1", False),
        ("fe80::1", False),
        ("fec0::1", False),
        ("2001:db8::1", False),
        ("ff0e::1", False),
        ("::", False),
    ],
)
def test_public_address_classification(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


async def test_guarded_client_refuses_loopback_and_posts_when_allowed(
    server: RunningServer, recorder: Recorder
) -> None:
    async with guarded_client(CLOSED) as client:
        with pytest.raises(StemhubError) as caught:
            await client.post(f"{server.url}/hook", content=b"job done")
    assert caught.value.code is ErrorCode.SOURCE_FORBIDDEN
    assert recorder.requests == []

    async with guarded_client(OPEN) as client:
        response = await client.post(f"{server.url}/hook", content=b"job done")
    assert response.text == "ok job done"


async def test_guarded_client_vets_every_redirect_hop(
    server: RunningServer, recorder: Recorder
) -> None:
    policy = FetchPolicy(max_bytes=MB, allowed_hosts=frozenset({"127.0.0.1"}))
    target = quote(f"http://localhost:{server.port}/echo")

    async with guarded_client(policy, follow_redirects=True) as client:
        with pytest.raises(StemhubError) as caught:
            await client.get(f"{server.url}/to?url={target}")

    assert caught.value.code is ErrorCode.SOURCE_FORBIDDEN
    assert recorder.paths() == ["/to"]


async def test_guarded_client_reports_transport_failures_as_httpx_errors() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    async with guarded_client(OPEN) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


def test_guarded_client_cannot_be_given_another_transport() -> None:
    with pytest.raises(TypeError):
        guarded_client(OPEN, transport=httpx.MockTransport(lambda r: httpx.Response(200)))


def test_policy_from_settings() -> None:
    settings = Settings(
        max_upload_bytes=5 * MB,
        fetch_timeout_s=12,
        allow_private_networks=True,
        allowed_hosts=["nas.home", "10.0.0.0/8"],
    )

    policy = FetchPolicy.from_settings(settings)

    assert policy.max_bytes == 5 * MB
    assert policy.timeout_s == 12
    assert policy.allow_private
    assert policy.allowed_hosts == frozenset({"nas.home", "10.0.0.0/8"})


def test_redact_url_hides_credentials_and_query() -> None:
    assert (
        redact_url("https://u:p@files.example.com:8443/a/b.mp3?X-Amz-Signature=abc#frag")
        == "https://files.example.com:8443/a/b.mp3?…"
    )
    assert redact_url("http://[::1]/x") == "http://[::1]/x"


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (512, "512 bytes"),
        (800 * 1024, "800 KiB"),
        (120 * MB, "120 MiB"),
        (int(9.5 * MB), "9.5 MiB"),
    ],
)
def test_format_bytes(size: int, shown: str) -> None:
    assert format_bytes(size) == shown


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(
    recorders: tuple[Recorder, Recorder],
    tls_ca: trustme.CA,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    """Shares the first recorder: a test uses ``server`` or ``tls_server``, not both."""
    pem = tmp_path_factory.mktemp("tls") / "music.example.pem"
    tls_ca.issue_cert("music.example").private_key_and_cert_chain_pem.write_to_path(pem)
    with serve(make_app(recorders[0]), ssl_certfile=str(pem), ssl_keyfile=str(pem)) as running:
        yield running


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_tls_verifies_the_host_name_while_connecting_to_the_checked_address(
    tls_server: RunningServer, recorder: Recorder, tls_ca: trustme.CA, tmp_path: Path
) -> None:
    resolve = fixed_resolver({"music.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    async with GuardedTransport(OPEN, resolver=resolve, verify=trusting(tls_ca)) as transport:
        got = await fetch_to_file(
            f"https://music.example:{tls_server.port}/audio/a.mp3?size=5000",
            tmp_path,
            policy=OPEN,
            transport=transport,
        )
        # Same socket address, but the certificate does not name this host.
        with pytest.raises(StemhubError) as caught:
            await fetch_to_file(
                f"https://other.example:{tls_server.port}/audio/a.mp3",
                tmp_path,
                policy=OPEN,
                transport=transport,
            )

    assert got.path.read_bytes() == payload(5000)
    assert recorder.requests[0].headers["host"] == f"music.example:{tls_server.port}"
    assert caught.value.code is ErrorCode.SOURCE_UNREACHABLE
    assert len(recorder.requests) == 1


async def test_credentials_are_dropped_on_a_downgrade_to_plain_http(
    tls_server: RunningServer,
    other: RunningServer,
    other_recorder: Recorder,
    tls_ca: trustme.CA,
    tmp_path: Path,
) -> None:
    resolve = fixed_resolver({"music.example": ["127.0.0.1"]})
    downgrade = f"http://music.example:{other.port}/echo"
    url = f"https://music.example:{tls_server.port}/to?url={quote(downgrade)}"

    async with GuardedTransport(OPEN, resolver=resolve, verify=trusting(tls_ca)) as transport:
        got = await fetch_to_file(
            url,
            tmp_path,
            policy=OPEN,
            headers={"Authorization": "Bearer xoxb-secret"},
            transport=transport,
        )

    assert got.path.read_text() == "-"
    assert "authorization" not in other_recorder.requests[0].headers


async def test_a_fetch_cancelled_at_any_point_leaves_no_open_or_partial_file(
    server: RunningServer, tmp_path: Path
) -> None:
    """A hub closing cancels its jobs wherever they are. The fetch is cancelled after 0, 1,
    2, ... turns of the event loop, so one run lands on every await of it: the connect,
    each read of the body, each write (a thread). None may leave a file object
    unclosed (a ResourceWarning found later, in some other test) or a partial file."""
    leaked: list[str] = []
    for turns in range(80):
        folder = tmp_path / str(turns)
        task = asyncio.create_task(
            fetch_to_file(f"{server.url}/audio/song.mp3?size=300000", folder, policy=OPEN)
        )
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            try:
                fetched = await task
            except asyncio.CancelledError:
                pass
            else:
                fetched.path.unlink()  # finished before the cancel landed
            gc.collect()
        leaked += [f"after {turns} turns: {w.message}" for w in caught]
        assert leftovers(folder) == [], f"after {turns} turns"
    assert leaked == []
