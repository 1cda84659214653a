"""Settings: one TOML file, read once, frozen; every bad file is a `ConfigError` naming file, line and key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from server.config import Settings, load_settings
from tests.support.servers import toolkiln_command
from tools.errors import ConfigError, SetupError


def _write(tmp_path: Path, text: str, name: str = "toolkiln.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_means_the_secure_defaults() -> None:
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.http.host == "127.0.0.1"
    assert settings.http.allowed_hosts == ()
    assert settings.http.allowed_origins == ()
    assert settings.http.max_body_bytes == 4 * 1024 * 1024
    assert settings.server.call_timeout_s == 60.0
    assert settings.logging.level == "info"
    assert settings.conformance_fixtures is False


def test_settings_are_frozen_at_every_level(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, '[server]\nname = "gw"\n'))
    with pytest.raises(ValidationError, match="frozen"):
        settings.conformance_fixtures = True
    with pytest.raises(ValidationError, match="frozen"):
        settings.server.name = "other"
    with pytest.raises(ValidationError, match="frozen"):
        settings.http.port = 1


def test_a_valid_file_is_read_into_typed_values(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[server]
name = "gateway"
call_timeout_s = 5
[http]
port = 9000
allowed_hosts = ["gw.internal:9000"]
[stdio]
roles = ["reader"]
[logging]
level = "warning"
redact_keys = ["x-session"]
""",
    )
    settings = load_settings(path)
    assert settings.server.name == "gateway"
    assert settings.server.call_timeout_s == 5.0
    assert settings.http.port == 9000
    assert settings.http.allowed_hosts == ("gw.internal:9000",)
    assert settings.stdio.roles == ("reader",)
    assert settings.logging.level == "warning"
    assert settings.logging.redact_keys == ("x-session",)
    assert settings.source_path == path


def test_a_relative_data_dir_resolves_against_the_config_files_folder(tmp_path: Path) -> None:
    path = _write(tmp_path, '[server]\ndata_dir = "state"\n')
    assert load_settings(path).server.data_dir == tmp_path / "state"
    absolute = tmp_path / "elsewhere"
    path = _write(tmp_path, f'[server]\ndata_dir = "{absolute}"\n')
    assert load_settings(path).server.data_dir == absolute


# (file text, line, key, words of the problem)
BAD_CONFIGS = [
    pytest.param("conformance_fixtures = false\nbogus = 1\n", 2, "bogus", "unknown key", id="unknown-top-level-key"),
    pytest.param('[server]\nname = "x"\n\n[http]\nprot = 8080\n', 5, "http.prot", "unknown key", id="typo-in-table"),
    pytest.param("[server.extra]\nx = 1\n", 1, "server.extra", "unknown key", id="unknown-sub-table"),
    pytest.param(
        '[stdio]\nprincipal = "me"\n[http]\nprincipal = "x"\n',
        4,
        "http.principal",
        "unknown key",
        id="key-of-another-table",
    ),
    pytest.param('source_path = "/etc"\n', 1, "source_path", "unknown key", id="internal-field-is-not-a-key"),
    pytest.param('[http]\nport = "eighty"\n', 2, "http.port", "valid integer", id="string-for-int"),
    pytest.param('[http]\nport = "8080"\n', 2, "http.port", "valid integer", id="numeric-string-not-coerced"),
    pytest.param("[http]\nport = 8080.0\n", 2, "http.port", "valid integer", id="float-for-int"),
    pytest.param("[http]\nport = 70000\n", 2, "http.port", "less than or equal to 65535", id="port-out-of-range"),
    pytest.param(
        'conformance_fixtures = "yes"\n', 1, "conformance_fixtures", "valid boolean", id="yes-is-not-a-boolean"
    ),
    pytest.param("[http]\njson_response = 1\n", 2, "http.json_response", "valid boolean", id="one-is-not-a-boolean"),
    pytest.param("[server]\ncall_timeout_s = 0\n", 2, "server.call_timeout_s", "greater than 0", id="zero-timeout"),
    pytest.param("[server]\ncall_timeout_s = inf\n", 2, "server.call_timeout_s", "3600", id="infinite-timeout"),
    pytest.param("[server]\ncall_timeout_s = nan\n", 2, "server.call_timeout_s", "3600", id="nan-timeout"),
    pytest.param('[logging]\nlevel = "loud"\n', 2, "logging.level", "'debug', 'info'", id="unknown-log-level"),
    pytest.param("server = 5\n", 1, "server", "object", id="table-given-as-number"),
    pytest.param('server.call_timeout_s = "slow"\n', 1, "server.call_timeout_s", "valid number", id="dotted-key"),
    pytest.param('[http]\nallowed_hosts = ["ok", 5]\n', 2, "http.allowed_hosts.1", "valid string", id="bad-list-item"),
    pytest.param("http = { port = -1 }\n", 1, "http.port", "greater than or equal to 0", id="inline-table"),
    pytest.param('[server]\n"name" = 5\n', 2, "server.name", "valid string", id="quoted-key"),
    pytest.param("[server]\nname = 1979-05-27\n", 2, "server.name", "date or time", id="toml-date"),
    pytest.param(
        "[http]\nmax_body_bytes = 10\n", 2, "http.max_body_bytes", "greater than or equal to 1024", id="tiny-body-cap"
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "problem"), BAD_CONFIGS)
def test_every_invalid_value_names_the_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, problem: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    error = caught.value
    assert isinstance(error, SetupError)
    assert (error.path, error.line, error.key) == (str(path), line, key)
    assert error.message.startswith(f"{path}:{line}: {key}: ")
    assert problem in error.message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("[server]\nname = \n", 2, id="missing-value"),
        pytest.param('[server]\nname = "a"\nname = "b"\n', 3, id="duplicate-key"),
        pytest.param('[server\nname = "a"\n', 1, id="unclosed-table"),
        pytest.param("\n\n[http]\nport = 80 80\n", 4, id="trailing-garbage"),
    ],
)
def test_a_file_that_is_not_toml_names_the_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.line == line
    assert caught.value.message.startswith(f"{path}:{line}: not valid TOML: ")


def test_two_problems_report_the_first_and_count_the_rest(tmp_path: Path) -> None:
    path = _write(tmp_path, '[http]\nport = "x"\nhost = 5\nmax_body_bytes = 1\n')
    with pytest.raises(ConfigError, match=r"\(and 2 more problems\)"):
        load_settings(path)


def _unreadable(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "missing.toml"
    if kind == "directory":
        return tmp_path
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\nname = "\xe9"\n')
    return path


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        pytest.param("missing", "cannot read the file", id="missing-file"),
        pytest.param("directory", "cannot read the file", id="a-directory"),
        pytest.param("latin1", "not UTF-8", id="not-utf8"),
    ],
)
def test_an_unreadable_file_is_a_config_error_naming_it(tmp_path: Path, kind: str, problem: str) -> None:
    path = _unreadable(tmp_path, kind)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.message.startswith(f"{path}: ")
    assert problem in caught.value.message


def test_serve_with_a_bad_config_exits_2_with_the_message_on_stderr(tmp_path: Path) -> None:
    path = _write(tmp_path, '[server]\nname = "x"\n[http]\nprot = 8080\n', name="bad.toml")
    done = subprocess.run(
        toolkiln_command("serve", "--config", str(path)),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert f"toolkiln: config error: {path}:4: http.prot: unknown key" in done.stderr
    assert done.stdout == ""


def test_init_writes_a_commented_file_that_loads_and_equals_the_defaults(tmp_path: Path) -> None:
    done = subprocess.run(toolkiln_command("init"), capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "toolkiln.toml"
    text = written.read_text(encoding="utf-8")
    assert text.lstrip().startswith("#")
    loaded = load_settings(written)
    # The relative data_dir resolves against the file's folder; everything else is the default.
    assert loaded.server.data_dir == tmp_path / ".toolkiln"
    defaults = Settings()
    relocated = defaults.model_copy(
        update={"server": defaults.server.model_copy(update={"data_dir": tmp_path / ".toolkiln"})}
    )
    assert loaded.model_copy(update={"source_path": None}) == relocated


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = _write(tmp_path, "# mine\n", name="mine.toml")
    refused = subprocess.run(
        toolkiln_command("init", "--path", str(target)), capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == 2
    assert "exists" in refused.stderr
    assert target.read_text(encoding="utf-8") == "# mine\n"
    forced = subprocess.run(
        toolkiln_command("init", "--path", str(target), "--force"), capture_output=True, text=True, timeout=30
    )
    assert forced.returncode == 0
    assert load_settings(target).server.name == "toolkiln"
