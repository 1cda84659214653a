"""Where a module's credentials go (THREATS G3, S4, S8): the manifest's `[[credentials]]` tables are
checked with every problem named, and the broker's injector places each value exactly as declared,
only for its origin, from the real encrypted store, refusing whatever it cannot or must not send."""

from __future__ import annotations

import base64
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import structlog

from credentials.masked import Secret
from credentials.vault import Vault
from modules.broker import EgressRefused
from modules.credentials import ModuleCredentials, ModuleInjector, calling_as
from modules.credentials_manifest import ModuleCredential
from modules.lifecycle import spec_of
from modules.manifest import ManifestInvalid, ModuleManifest, load_manifest
from modules.sandbox.errors import ModuleLoadFailed
from server.logs import REDACTED, SECRETS
from tests.modules.support import FIXTURES

pytestmark = pytest.mark.anyio

API, OTHER = "http://127.0.0.1:8099", "http://127.0.0.1:8098"
HEAD = f'name = "m"\nversion = "1.0.0"\ndescription = "d"\nentry = "m.py"\negress = ["{API}"]\n'
TOOL = '[[tools]]\nname = "t"\ndescription = "d"\ninput_schema = { type = "object" }\n'


def problems_of(tmp_path: Path, manifest: str) -> list[str]:
    (tmp_path / "m.py").write_text("")
    (tmp_path / "manifest.toml").write_text(manifest)
    with pytest.raises(ManifestInvalid) as invalid:
        load_manifest(tmp_path)
    return invalid.value.problems


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        pytest.param('credentials = ["api_key"]', "'api_key' is a bare handle", id="bare-handle"),
        pytest.param('[[credentials]]\nhandle = "k"', "give either in = ", id="nowhere-to-go"),
        pytest.param(
            '[[credentials]]\nhandle = "k"\nin = "header"\nname = "X-Key"\nscheme = "bearer"',
            "give either in = ",
            id="two-places",
        ),
        pytest.param('[[credentials]]\nhandle = "k"\nin = "query"', "in = query needs name", id="query-without-name"),
        pytest.param('[[credentials]]\nhandle = "k"\nscheme = "basic"\nname = "X"', "drop name", id="scheme-with-name"),
        pytest.param('[[credentials]]\nhandle = "k"\nin = "body"\nname = "k"', "credentials.0.in", id="in-the-body"),
        pytest.param('[[credentials]]\nhandle = "k"\nscheme = "digest"', "credentials.0.scheme", id="digest-scheme"),
        pytest.param('[[credentials]]\nhandle = "k"\nin = "header"\nname = "Host"', "Host is not a header", id="host"),
        pytest.param(
            '[[credentials]]\nhandle = "k"\nin = "header"\nname = "Proxy-Authorization"',
            "Proxy-Authorization is not a header",
            id="proxy-header",
        ),
        pytest.param(
            '[[credentials]]\nhandle = "k"\nin = "header"\nname = "X-Key\\r\\nX-Evil"',
            "is not a plain header",
            id="crlf-in-the-name",
        ),
        pytest.param('[[credentials]]\nhandle = "../k"\nscheme = "bearer"', "credentials.0.handle", id="path-handle"),
        pytest.param(
            '[[credentials]]\nhandle = "k"\nscheme = "bearer"\nowner = "root"', "credentials.0.owner", id="unknown-key"
        ),
        pytest.param(
            f'[[credentials]]\nhandle = "k"\nscheme = "bearer"\norigin = "{OTHER}"',
            f"origin '{OTHER}' is not one of the egress entries",
            id="origin-outside-egress",
        ),
        pytest.param(
            '[[credentials]]\nhandle = "k"\nscheme = "bearer"\n[[credentials]]\nhandle = "k"\nin = "query"\nname = "k"',
            "credentials.1 (k): the handle is declared twice",
            id="handle-twice",
        ),
        pytest.param(
            '[[credentials]]\nhandle = "a"\nscheme = "bearer"\n'
            '[[credentials]]\nhandle = "b"\nin = "header"\nname = "Authorization"',
            f"credentials.1 (b): goes into the same header as a for {API}",
            id="same-place-twice",
        ),
    ],
)
def test_a_bad_credential_declaration_is_named(tmp_path: Path, table: str, problem: str) -> None:
    problems = problems_of(tmp_path, HEAD + table + "\n" + TOOL)

    assert any(problem in found for found in problems), problems


def test_with_several_origins_each_credential_must_name_its_own(tmp_path: Path) -> None:
    two_origins = HEAD.replace(f'["{API}"]', f'["{API}", "{OTHER}"]')

    problems = problems_of(tmp_path, two_origins + '[[credentials]]\nhandle = "k"\nscheme = "bearer"\n' + TOOL)

    why = "origin is required (egress lists 2 origins; name the one it is for)"
    assert problems == [f"(manifest): credentials.0 (k): {why}"]


def test_the_declarations_survive_the_registry_round_trip() -> None:
    manifest = load_manifest(FIXTURES / "keyed" / "1.0.0")

    stored = ModuleManifest.stored(manifest.model_dump(mode="json"))

    assert stored == manifest
    assert stored.credentials == ("weather_key", "mirror_key")
    assert [c.describe() for c in stored.declared_credentials] == [
        "weather_key → header X-Weather-Key",
        "mirror_key → query key, each caller's own",
    ]


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    opened = Vault(tmp_path / "credentials.db", tmp_path / "credentials.key")
    yield opened
    opened.close()


def injector_for(vault: Vault, *tables: dict[str, object], egress: tuple[str, ...] = (API,)) -> ModuleInjector:
    declared = [ModuleCredential.model_validate(table, strict=False) for table in tables]
    return ModuleInjector(vault, "m@1.0.0", declared, egress)


async def sent(injector: ModuleInjector, url: str, headers: dict[str, str] | None = None) -> httpx.Request:
    request = httpx.Request("GET", url, headers=headers)
    origin = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
    injection = await injector(origin, ("k",))
    await injection.inject(request)
    return request


@pytest.mark.parametrize(
    ("table", "where", "expected"),
    [
        pytest.param({"in": "header", "name": "X-Api-Key"}, ("header", "x-api-key"), "{v}", id="header"),
        pytest.param({"in": "query", "name": "api_key"}, ("query", "api_key"), "{v}", id="query"),
        pytest.param({"in": "cookie", "name": "sid"}, ("header", "cookie"), "sid={v}", id="cookie"),
        pytest.param({"scheme": "bearer"}, ("header", "authorization"), "Bearer {v}", id="bearer"),
    ],
)
async def test_a_stored_token_lands_exactly_where_declared_and_its_value_is_scrubbed_from_logs(
    vault: Vault, canary: str, table: dict[str, str], where: tuple[str, str], expected: str
) -> None:
    value = f"{canary}-{secrets.token_hex(4)}"  # new to the process-wide scrub set
    injector = injector_for(vault, {"handle": "k", **table})
    vault.put("k", "", API, "token", {}, {"value": value})

    request = await sent(injector, f"{API}/v1/items?q=1")

    kind, name = where
    got = request.headers.get(name, "") if kind == "header" else request.url.params.get(name, "")
    assert Secret(got) == Secret(expected.format(v=value))
    assert request.url.params.get("q") == "1"
    assert SECRETS.scrub(f"logged {value}") == f"logged {REDACTED}"


async def test_basic_credentials_are_packed_into_authorization(vault: Vault, canary: str) -> None:
    injector = injector_for(vault, {"handle": "k", "scheme": "basic"})
    vault.put("k", "", API, "basic", {"username": "svc"}, {"password": canary})

    request = await sent(injector, f"{API}/")

    expected = "Basic " + base64.b64encode(f"svc:{canary}".encode()).decode()
    assert Secret(request.headers["authorization"]) == Secret(expected)
    assert SECRETS.scrub(expected) == f"Basic {REDACTED}"


@pytest.mark.parametrize(
    ("stored_origin", "kind", "why"),
    [
        pytest.param(OTHER, "token", f"is bound to {OTHER}, not to {API}", id="stored-for-another-origin"),
        pytest.param(API, "basic", "is a 'basic' credential; it is used as token", id="wrong-kind"),
        pytest.param(None, "token", "is not stored (shared)", id="not-stored"),
    ],
)
async def test_a_credential_that_cannot_be_used_refuses_the_request(
    vault: Vault, canary: str, stored_origin: str | None, kind: str, why: str
) -> None:
    injector = injector_for(vault, {"handle": "k", "in": "header", "name": "X-Api-Key"})
    if stored_origin is not None:
        fields = {"password": canary} if kind == "basic" else {"value": canary}
        vault.put("k", "", stored_origin, kind, {"username": "u"} if kind == "basic" else {}, fields)

    with structlog.testing.capture_logs() as logs, pytest.raises(EgressRefused) as refused:
        await sent(injector, f"{API}/")

    assert (refused.value.reason, refused.value.message) == ("credential", f"credential 'k' cannot be used for {API}")
    assert why in logs[-1]["why"]  # the operator's log says why; the module only learns the handle


async def test_a_request_to_an_origin_without_declared_credentials_gets_none(vault: Vault, canary: str) -> None:
    injector = injector_for(vault, {"handle": "k", "scheme": "bearer", "origin": API}, egress=(API, OTHER))
    vault.put("k", "", API, "token", {}, {"value": canary})

    request = await sent(injector, f"{OTHER}/")

    assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("url", "headers", "reason"),
    [
        pytest.param(f"{API}/", {"x-api-key": "guess"}, "header", id="the-injected-header"),
        pytest.param(f"{API}/?token=guess", {}, "credential", id="the-injected-query-key"),
    ],
)
async def test_a_module_that_fills_a_credentials_place_itself_is_refused(
    vault: Vault, canary: str, url: str, headers: dict[str, str], reason: str
) -> None:
    injector = injector_for(
        vault, {"handle": "k", "in": "header", "name": "X-Api-Key"}, {"handle": "t", "in": "query", "name": "token"}
    )
    vault.put("k", "", API, "token", {}, {"value": canary})
    vault.put("t", "", API, "token", {}, {"value": canary})

    with pytest.raises(EgressRefused) as refused:
        await sent(injector, url, headers)

    assert refused.value.reason == reason


async def test_each_call_sends_its_own_callers_credential_and_calls_do_not_overlap(vault: Vault) -> None:
    injector = injector_for(vault, {"handle": "k", "in": "header", "name": "X-User-Key", "per_principal": True})
    vault.put("k", "alice", API, "token", {}, {"value": "key-of-alice"})
    vault.put("k", "bob", API, "token", {}, {"value": "key-of-bob"})
    seen: dict[str, str] = {}
    bob_entered = anyio.Event()

    async def call_as(principal: str) -> None:
        with calling_as(principal):
            async with injector.serving():
                if principal == "bob":
                    bob_entered.set()
                seen[principal] = (await sent(injector, f"{API}/")).headers["x-user-key"]

    with pytest.raises(EgressRefused, match="cannot be used"):
        await sent(injector, f"{API}/")  # no call in progress: no principal to send for
    async with anyio.create_task_group() as tg:
        with calling_as("alice"):
            async with injector.serving():
                tg.start_soon(call_as, "bob")
                await anyio.wait_all_tasks_blocked()
                assert not bob_entered.is_set()  # bob waits until alice's call is over
                seen["alice"] = (await sent(injector, f"{API}/")).headers["x-user-key"]

    assert seen == {"alice": "key-of-alice", "bob": "key-of-bob"}


async def test_a_worker_is_refused_when_its_manifest_no_longer_declares_what_it_was_loaded_for(tmp_path: Path) -> None:
    directory = tmp_path / "keyed" / "1.0.0"
    shutil.copytree(FIXTURES / "keyed" / "1.0.0", directory)
    spec = spec_of(load_manifest(directory), directory)
    manifest = directory / "manifest.toml"
    manifest.write_text(manifest.read_text().replace('"mirror_key"', '"other_key"'))

    with pytest.raises(ModuleLoadFailed, match="declares other credentials"):
        await ModuleCredentials(Vault(tmp_path / "c.db", tmp_path / "c.key")).injector(spec)
