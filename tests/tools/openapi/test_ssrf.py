"""THREATS S1, S2, S4 and S5: a call never leaves the declared host and base path, never reaches
a private address the source did not allowlist, never carries credentials to another origin and
never lets an argument write a header of its own."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.tools.openapi.conftest import LocalServer, TableResolver, UpstreamFactory, plan
from tools.errors import UpstreamFailure
from tools.model import CallContext, Principal, ToolResult
from tools.openapi.errors import BaseUrlRefused, EgressBlocked, RequestRefused, UpstreamError
from tools.openapi.executor import make_executor
from tools.openapi.plan import BodyField, BodyPlan, OperationPlan, ParamPlan
from tools.openapi.upstream import Upstream, UpstreamLimits
from tools.openapi.urlsafety import EgressPolicy, is_public_address, parse_ip

pytestmark = pytest.mark.anyio

CONTEXT = CallContext(principal=Principal(id="test"))
CANARY = "canary-secret-4f1c"
REFUSED = None


async def run(upstream: Upstream, operation: OperationPlan, **arguments: Any) -> ToolResult:
    result = await make_executor(operation, upstream)(arguments, CONTEXT)
    assert isinstance(result, ToolResult)
    return result


def path_param(name: str = "id", style: str = "simple") -> ParamPlan:
    return ParamPlan(name=name, arg=name, location="path", style=style, explode=False, required=True)


# --- S1: path parameters ------------------------------------------------------------------------

S1_VALUES = [
    pytest.param("../../admin", REFUSED, id="dotdot-slash-admin"),
    pytest.param("..", REFUSED, id="dotdot"),
    pytest.param(".", REFUSED, id="dot"),
    pytest.param("%2e%2e%2f", REFUSED, id="percent-encoded-dotdot-slash"),
    pytest.param("%2E%2E", REFUSED, id="percent-encoded-dotdot"),
    pytest.param("..%2F..%2Fadmin", REFUSED, id="dotdot-encoded-slash-admin"),
    pytest.param("a/b", REFUSED, id="slash-separator"),
    pytest.param("a\\b", REFUSED, id="backslash-separator"),
    pytest.param("/admin", REFUSED, id="leading-slash"),
    pytest.param("//evil.com/x", REFUSED, id="protocol-relative-host"),
    pytest.param("http://evil.com", REFUSED, id="absolute-url"),
    pytest.param("a\r\nHost: evil", REFUSED, id="crlf"),
    pytest.param("a?x=1", "a%3Fx%3D1", id="question-mark-encoded"),
    pytest.param("a#f", "a%23f", id="hash-encoded"),
    pytest.param("@evil.com", "%40evil.com", id="at-sign-encoded"),
    pytest.param("...", "...", id="three-dots-is-a-plain-name"),
    pytest.param("%41", "%2541", id="percent-sign-encoded"),
]


@pytest.mark.parametrize(("value", "sent"), S1_VALUES)
async def test_path_parameter_never_escapes_the_declared_host_and_prefix(
    echo_server: LocalServer, make_upstream: UpstreamFactory, value: str, sent: str | None
) -> None:
    """THREATS S1: traversal and separators are refused; everything else is encoded in its segment."""
    upstream = make_upstream(echo_server.url + "/api")
    operation = plan("GET", "/items/{id}/detail", path_param())
    if sent is REFUSED:
        with pytest.raises(RequestRefused):
            await run(upstream, operation, id=value)
        assert echo_server.seen.requests == []
        return
    await run(upstream, operation, id=value)
    seen = echo_server.seen.last
    assert seen["raw_path"] == f"/api/items/{sent}/detail"
    assert seen["query"] == ""
    assert seen["headers"]["host"] == f"127.0.0.1:{echo_server.port}"


@pytest.mark.parametrize(
    ("style", "value"),
    [
        pytest.param("label", "", id="empty-label-is-a-dot-segment"),
        pytest.param("label", ".", id="label-dot-is-a-dotdot-segment"),
        pytest.param("simple", "", id="empty-simple-value"),
        pytest.param("simple", [".", "."], id="array-of-dots"),
    ],
)
async def test_rendered_path_never_contains_dot_segments(
    echo_server: LocalServer, make_upstream: UpstreamFactory, style: str, value: Any
) -> None:
    upstream = make_upstream(echo_server.url)
    with pytest.raises(RequestRefused):
        await run(upstream, plan("GET", "/a/{id}", path_param(style=style)), id=value)
    assert echo_server.seen.requests == []


async def test_a_path_value_past_the_url_length_limit_is_refused_not_crashed(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    with pytest.raises(RequestRefused, match="URL too long"):
        await run(upstream, plan("GET", "/a/{id}", path_param()), id="x" * 70_000)
    assert echo_server.seen.requests == []


# --- S2: private addresses ----------------------------------------------------------------------

S2_LITERALS = [
    pytest.param("http://127.0.0.1/", id="loopback"),
    pytest.param("http://10.0.0.5/", id="rfc1918"),
    pytest.param("http://169.254.169.254/latest/", id="link-local-metadata"),
    pytest.param("http://100.64.0.1/", id="cgnat"),
    pytest.param("http://0.0.0.0/", id="unspecified"),
    pytest.param("http://[::1]/", id="ipv6-loopback"),
    pytest.param("http://[fd00::1]/", id="ipv6-ula"),
    pytest.param("http://[fe80::1]/", id="ipv6-link-local"),
    pytest.param("http://[::ffff:127.0.0.1]/", id="ipv4-mapped-loopback"),
    pytest.param("http://[64:ff9b::a9fe:a9fe]/", id="nat64-metadata"),
    pytest.param("http://[2002:a9fe:a9fe::1]/", id="6to4-metadata"),
    pytest.param("http://2130706433/", id="decimal-ipv4"),
    pytest.param("http://0177.0.0.1/", id="octal-ipv4"),
    pytest.param("http://0x7f.0.0.1/", id="hex-ipv4"),
    pytest.param("http://127.1/", id="short-ipv4"),
    pytest.param("https://api.example.com@127.0.0.1/", id="userinfo-host-confusion"),
    pytest.param("http://user:pw@api.example.com/", id="userinfo-credentials"),
    pytest.param("ftp://api.example.com/", id="non-http-scheme"),
    pytest.param("/relative/only", id="relative-url"),
]


@pytest.mark.parametrize("base_url", S2_LITERALS)
def test_private_or_ambiguous_base_url_is_refused_at_load(base_url: str) -> None:
    """THREATS S2: without an allowlist entry the source never gets built."""
    with pytest.raises(BaseUrlRefused):
        Upstream(base_url)


@pytest.mark.parametrize(
    "base_url",
    [
        pytest.param("http://[::ffff:127.0.0.1]:1/", id="ipv4-mapped-form-of-allowed-address"),
        pytest.param("http://[64:ff9b::7f00:1]:1/", id="nat64-form-of-allowed-address"),
        pytest.param("http://2130706433:1/", id="decimal-form-of-allowed-address"),
        pytest.param("http://0x7f.0.0.1:1/", id="hex-form-of-allowed-address"),
        pytest.param("http://[::1]:1/", id="other-loopback-family"),
        pytest.param("http://127.0.0.2:1/", id="neighbouring-loopback-address"),
    ],
)
def test_allowlisting_one_address_does_not_admit_other_spellings_of_it(base_url: str) -> None:
    with pytest.raises(BaseUrlRefused):
        Upstream(base_url, allow_private_hosts=["127.0.0.1"])


def test_allowlisted_loopback_and_networks_are_admitted() -> None:
    policy = EgressPolicy.from_allowlist(["127.0.0.1", "10.0.0.0/8", "Internal.Example."])
    assert policy.allows_host("internal.example")
    ip = parse_ip("10.9.8.7")
    assert ip is not None
    assert policy.allows_address(ip)
    assert Upstream("http://127.0.0.1:8080/v1", allow_private_hosts=["127.0.0.1"]).base_path == "/v1"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        pytest.param("93.184.216.34", True, id="public-v4"),
        pytest.param("2606:4700::1111", True, id="public-v6"),
        pytest.param("64:ff9b::5db8:d822", True, id="nat64-of-public"),
        pytest.param("64:ff9b::a00:5", False, id="nat64-of-rfc1918"),
        pytest.param("64:ff9b:1::a9fe:a9fe", False, id="local-use-nat64"),
        pytest.param("2001:0:4136:e378:8000:63bf:3fff:fdd2", False, id="teredo"),
        pytest.param("224.0.0.1", False, id="multicast"),
        pytest.param("198.18.0.1", False, id="benchmarking-range"),
    ],
)
def test_address_classification_looks_through_embedded_ipv4(address: str, public: bool) -> None:
    ip = parse_ip(address)
    assert ip is not None
    assert is_public_address(ip) is public


S2_RESOLVED = [
    pytest.param(["127.0.0.1"], id="resolves-to-loopback"),
    pytest.param(["10.0.0.5"], id="resolves-to-rfc1918"),
    pytest.param(["169.254.169.254"], id="resolves-to-metadata"),
    pytest.param(["100.64.0.1"], id="resolves-to-cgnat"),
    pytest.param(["::1"], id="resolves-to-ipv6-loopback"),
    pytest.param(["fd00::1"], id="resolves-to-ula"),
    pytest.param(["::ffff:127.0.0.1"], id="resolves-to-ipv4-mapped"),
    pytest.param(["64:ff9b::a9fe:a9fe"], id="resolves-to-nat64-metadata"),
    pytest.param(["2002:a9fe:a9fe::1"], id="resolves-to-6to4-metadata"),
    pytest.param(["93.184.216.34", "127.0.0.1"], id="mixed-public-and-private-answer"),
]


@pytest.mark.parametrize("addresses", S2_RESOLVED)
async def test_name_resolving_to_a_private_address_is_blocked_before_connecting(
    echo_server: LocalServer, make_upstream: UpstreamFactory, addresses: list[str]
) -> None:
    """THREATS S2: checked after resolution; the error names the host, never an internal answer."""
    resolver = TableResolver({"api.example.test": addresses})
    upstream = make_upstream(f"http://api.example.test:{echo_server.port}", allow=[], resolver=resolver)
    with pytest.raises(EgressBlocked) as caught:
        await run(upstream, plan("GET", "/internal"))
    assert (
        caught.value.message == "Request to host 'api.example.test' blocked: resolves to a private or reserved address"
    )
    assert echo_server.seen.requests == []


async def test_allowlisted_name_connects_to_the_vetted_address_and_keeps_its_host_header(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    """THREATS S3: the connection is pinned to the address that was checked."""
    resolver = TableResolver({"api.example.test": ["127.0.0.1"]})
    upstream = make_upstream(f"http://api.example.test:{echo_server.port}", resolver=resolver)
    await run(upstream, plan("GET", "/pinned"))
    assert echo_server.seen.last["headers"]["host"] == f"api.example.test:{echo_server.port}"
    # A later answer pointing elsewhere is not used while the vetted one is fresh.
    resolver.table["api.example.test"] = ["10.0.0.5"]
    await run(upstream, plan("GET", "/pinned"))
    assert len(echo_server.seen.requests) == 2


async def test_name_that_does_not_resolve_is_blocked_not_crashed(make_upstream: UpstreamFactory) -> None:
    upstream = make_upstream("http://nowhere.example.test", resolver=TableResolver({}))
    with pytest.raises(EgressBlocked, match="does not resolve"):
        await run(upstream, plan("GET", "/"))


# --- S4: redirects ------------------------------------------------------------------------------


def redirect_plan() -> OperationPlan:
    query = [
        ParamPlan(name="to", arg="to", location="query", style="form", explode=True),
        ParamPlan(name="status", arg="status", location="query", style="form", explode=True),
    ]
    return plan("POST", "/redirect", *query, body=BodyPlan("application/json", fields=(BodyField("a", "a"),)))


async def _inject_canary(request: httpx.Request) -> None:
    request.headers["Authorization"] = f"Bearer {CANARY}"
    request.headers["X-API-Key"] = CANARY
    request.url = request.url.copy_add_param("api_key", CANARY)


def canary_upstream(base: str, **limits: Any) -> Upstream:
    return Upstream(base, limits=UpstreamLimits(**limits), allow_private_hosts=["127.0.0.1"], inject=_inject_canary)


async def test_an_argument_naming_the_credential_header_or_query_key_never_shadows_it(
    echo_server: LocalServer,
) -> None:
    """THREATS A4: the injected value replaces the argument's, it is never sent beside it."""

    async def inject(request: httpx.Request) -> None:
        request.headers["X-API-Key"] = CANARY
        request.url = request.url.copy_set_param("api_key", CANARY)

    upstream = Upstream(echo_server.url, allow_private_hosts=["127.0.0.1"], inject=inject)
    operation = plan(
        "GET",
        "/secure",
        ParamPlan(name="X-API-Key", arg="key", location="header", style="simple", explode=False),
        ParamPlan(name="api_key", arg="api_key", location="query", style="form", explode=True),
    )
    try:
        await run(upstream, operation, key="attacker", api_key="attacker")
    finally:
        await upstream.aclose()
    seen = echo_server.seen.last
    assert seen["headers"]["x-api-key"] == CANARY
    assert seen["header_names"].count("x-api-key") == 1
    assert seen["query_items"] == [["api_key", CANARY]]


async def test_redirects_are_not_followed_by_default(echo_server: LocalServer) -> None:
    upstream = canary_upstream(echo_server.url)
    try:
        with pytest.raises(UpstreamError, match="HTTP 302 Found: redirect not followed") as caught:
            await run(upstream, redirect_plan(), to="http://169.254.169.254/latest/meta-data/", a=1)
    finally:
        await upstream.aclose()
    assert caught.value.status == 302
    assert "169.254" not in caught.value.message
    assert len(echo_server.seen.requests) == 1


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("http://169.254.169.254/latest/meta-data/", id="to-metadata"),
        pytest.param("http://10.0.0.5/", id="to-rfc1918"),
        pytest.param("http://[::ffff:169.254.169.254]/", id="to-ipv4-mapped-metadata"),
        pytest.param("http://2130706433/", id="to-decimal-loopback"),
        pytest.param("http://user@127.0.0.1/", id="to-userinfo"),
        pytest.param("file:///etc/passwd", id="to-file-scheme"),
    ],
)
async def test_followed_redirect_hops_are_vetted_like_the_first_request(echo_server: LocalServer, target: str) -> None:
    """THREATS S4: with redirects on, every hop passes the same egress check."""
    upstream = canary_upstream(echo_server.url, follow_redirects=True)
    try:
        with pytest.raises(EgressBlocked):
            await run(upstream, redirect_plan(), to=target, a=1)
    finally:
        await upstream.aclose()
    assert len(echo_server.seen.requests) == 1


async def test_redirect_to_another_origin_carries_no_credentials_arguments_or_body(
    echo_server: LocalServer, other_origin: LocalServer
) -> None:
    """THREATS S4: no injected credential — header or query key — reaches a new origin."""
    upstream = canary_upstream(echo_server.url, follow_redirects=True)
    operation = plan(
        "POST",
        "/redirect",
        ParamPlan(name="to", arg="to", location="query", style="form", explode=True),
        ParamPlan(name="X-Tenant", arg="tenant", location="header", style="simple", explode=False),
        ParamPlan(name="sid", arg="sid", location="cookie", style="form", explode=True),
        body=BodyPlan("application/json", fields=(BodyField("a", "a"),)),
    )
    try:
        result = await run(upstream, operation, to=f"{other_origin.url}/landed", tenant="t1", sid="s1", a=1)
    finally:
        await upstream.aclose()
    first = echo_server.seen.last
    assert first["headers"]["authorization"] == f"Bearer {CANARY}"
    hop = other_origin.seen.last
    assert hop["raw_path"] == "/landed"
    assert hop["method"] == "GET"
    assert CANARY not in repr(hop)
    assert "x-tenant" not in hop["headers"]
    assert hop["cookies"] == {}
    assert hop["body"] is None
    assert result.structured is not None
    assert result.structured["raw_path"] == "/landed"


async def test_same_origin_redirect_keeps_method_body_and_credentials_for_307(echo_server: LocalServer) -> None:
    upstream = canary_upstream(echo_server.url, follow_redirects=True)
    try:
        await run(upstream, redirect_plan(), to="/moved", status=307, a=1)
    finally:
        await upstream.aclose()
    hop = echo_server.seen.last
    assert (hop["raw_path"], hop["method"], hop["body"]) == ("/moved", "POST", {"a": 1})
    assert hop["headers"]["x-api-key"] == CANARY
    assert hop["query"] == f"api_key={CANARY}"


async def test_a_long_redirect_chain_is_cut_at_the_hop_cap(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url, follow_redirects=True, max_redirects=5)
    with pytest.raises(UpstreamFailure, match="redirected more than 5 times"):
        await run(upstream, plan("GET", "/chain/0"))
    assert [r["raw_path"] for r in echo_server.seen.requests] == [f"/chain/{n}" for n in range(6)]


async def test_https_to_http_downgrade_is_never_followed(make_upstream: UpstreamFactory) -> None:
    sent: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url)
        return httpx.Response(302, headers={"location": "http://api.example.test/plain"})

    upstream = make_upstream(
        "https://api.example.test",
        allow=[],
        resolver=TableResolver({"api.example.test": ["93.184.216.34"]}),
        transport=httpx.MockTransport(answer),
        follow_redirects=True,
    )
    with pytest.raises(EgressBlocked, match="https to a non-https URL"):
        await run(upstream, plan("GET", "/secure"))
    assert [str(url) for url in sent] == ["https://93.184.216.34/secure"]


# --- S5: headers --------------------------------------------------------------------------------

S5_VALUES = [
    pytest.param("v\r\nX-Injected: 1", id="crlf-header-injection"),
    pytest.param("v\nX-Injected: 1", id="bare-lf"),
    pytest.param("v\rX-Injected: 1", id="bare-cr"),
    pytest.param("v\x00", id="nul"),
    pytest.param("v\x1b[31m", id="escape"),
    pytest.param(["ok", "v\r\nX: 1"], id="crlf-inside-array-item"),
    pytest.param({"k": "v\r\nX: 1"}, id="crlf-inside-object-value"),
]


@pytest.mark.parametrize("value", S5_VALUES)
async def test_header_value_with_control_characters_is_refused_before_sending(
    echo_server: LocalServer, make_upstream: UpstreamFactory, value: Any
) -> None:
    """THREATS S5: a tool error from our validator, not an h11 crash; nothing is sent."""
    upstream = make_upstream(echo_server.url)
    header = ParamPlan(name="X-Trace", arg="trace", location="header", style="simple", explode=False)
    with pytest.raises(RequestRefused, match="control characters"):
        await run(upstream, plan("GET", "/h", header), trace=value)
    assert echo_server.seen.requests == []


@pytest.mark.parametrize(
    "name", ["Host", "Authorization", "Cookie", "Content-Length", "Transfer-Encoding", "Connection", "Content-Type"]
)
async def test_header_parameter_naming_a_control_header_can_never_be_set(
    echo_server: LocalServer, make_upstream: UpstreamFactory, name: str
) -> None:
    """THREATS S5, A4: refused when given, and never sent when absent."""
    upstream = make_upstream(echo_server.url)
    operation = plan("GET", "/h", ParamPlan(name=name, arg="value", location="header", style="simple", explode=False))
    with pytest.raises(RequestRefused, match=f"Header '{name}' cannot be set"):
        await run(upstream, operation, value="evil.example")
    assert echo_server.seen.requests == []
    await run(upstream, operation)
    headers = echo_server.seen.last["headers"]
    assert headers["host"] == f"127.0.0.1:{echo_server.port}"
    assert "authorization" not in headers
    assert "cookie" not in headers


async def test_header_parameter_name_that_is_not_a_token_is_a_build_error(make_upstream: UpstreamFactory) -> None:
    upstream = make_upstream("http://127.0.0.1:1")
    bad = ParamPlan(name="X-A\r\nX-B", arg="a", location="header", style="simple", explode=False)
    with pytest.raises(ValueError, match="not a valid HTTP header name"):
        make_executor(plan("GET", "/", bad), upstream)


async def test_cookie_values_cannot_add_cookies_of_their_own(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    cookie = ParamPlan(name="sid", arg="sid", location="cookie", style="form", explode=True)
    await run(upstream, plan("GET", "/c", cookie), sid="x; admin=true\r\nX: 1")
    assert list(echo_server.seen.last["cookies"]) == ["sid"]
