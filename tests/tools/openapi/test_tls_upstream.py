"""HTTPS upstreams: the guard pins the vetted address, TLS still checks the certificate against the name.

A private CA issues a certificate for `api.example.test`; an in-memory DNS answers that name with
127.0.0.1. The call must connect to the pinned address, send SNI and Host for the name, and verify
the certificate for the name; a certificate for another name, or from an untrusted CA, is refused.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.tools.openapi.conftest import TableResolver, UpstreamFactory, plan
from tests.tools.openapi.test_executor import run
from tools.openapi.errors import UpstreamUnreachable
from tools.openapi.pooled_transport import PooledTransport

pytestmark = pytest.mark.anyio

NAME = "api.example.test"


@dataclass
class Pki:
    ca_pem: bytes
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate

    def issue(self, dns_name: str, tmp: Path) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        cert_path, key_path = tmp / f"{dns_name}.pem", tmp / f"{dns_name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path


def _ca() -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "toolkiln test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Pki(cert.public_bytes(serialization.Encoding.PEM), key, cert)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return _ca()


@dataclass
class TlsServer:
    port: int
    seen: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
async def tls_server(pki: Pki, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[TlsServer]:
    """A one-route HTTPS server on 127.0.0.1 presenting a certificate for the name the test asks for."""
    dns_name = getattr(request, "param", NAME)
    cert, key = pki.issue(dns_name, tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sni: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment,misc]
    state = TlsServer(port=0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
            state.seen.append({"host": headers.get("Host", headers.get("host", "")), "sni": str(sni[-1])})
            body = b'{"secure":true}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


def _trusting(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=pki.ca_pem.decode("ascii"))
    return context


async def test_a_pinned_https_call_sends_the_name_for_sni_host_and_certificate_checks(
    tls_server: TlsServer, pki: Pki, make_upstream: UpstreamFactory
) -> None:
    resolver = TableResolver({NAME: ["127.0.0.1"]})
    upstream = make_upstream(
        f"https://{NAME}:{tls_server.port}",
        allow=[NAME],
        resolver=resolver,
        transport=PooledTransport(max_connections=2, ssl_context=_trusting(pki)),
    )
    result = await run(upstream, plan("GET", "/secure"))
    assert result.structured == {"secure": True}
    assert resolver.asked == [NAME]
    assert tls_server.seen == [{"host": f"{NAME}:{tls_server.port}", "sni": NAME}]


@pytest.mark.parametrize("tls_server", ["other.example.test"], indirect=True)
async def test_a_certificate_for_another_name_is_refused(
    tls_server: TlsServer, pki: Pki, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(
        f"https://{NAME}:{tls_server.port}",
        allow=[NAME],
        resolver=TableResolver({NAME: ["127.0.0.1"]}),
        transport=PooledTransport(max_connections=2, ssl_context=_trusting(pki)),
    )
    with pytest.raises(UpstreamUnreachable, match="Could not connect"):
        await run(upstream, plan("GET", "/secure"))
    assert tls_server.seen == []


async def test_a_certificate_from_an_untrusted_ca_is_refused(
    tls_server: TlsServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(
        f"https://{NAME}:{tls_server.port}",
        allow=[NAME],
        resolver=TableResolver({NAME: ["127.0.0.1"]}),
        transport=PooledTransport(max_connections=2),  # the system's trust store only
    )
    with pytest.raises(UpstreamUnreachable, match="Could not connect"):
        await run(upstream, plan("GET", "/secure"))
    assert tls_server.seen == []
