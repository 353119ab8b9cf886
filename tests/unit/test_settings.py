import base64
import os

import pytest

from keystile.domain.errors import ConfigurationError
from keystile.settings import Settings, is_loopback_host


def test_defaults_are_dev_mode_on_sqlite(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.dev_mode
    assert s.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'keystile-data' / 'keystile.db'}"
    s.check()


def test_environment_variables(monkeypatch, tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("KEYSTILE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KEYSTILE_PUBLIC_URL", "https://portal.example.com/")
    monkeypatch.setenv("KEYSTILE_SECRET_KEY", key)
    monkeypatch.setenv("KEYSTILE_DATABASE_URL", "postgresql+psycopg://u@db/keystile")
    s = Settings()
    assert not s.dev_mode
    assert s.public_url == "https://portal.example.com"
    assert not s.is_sqlite
    s.check()
    assert key not in repr(s)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KEYSTILE_PUBLIC_URL": "https://portal.example.com"}, "KEYSTILE_SECRET_KEY is required"),
        (
            {
                "KEYSTILE_PUBLIC_URL": "http://portal.example.com",
                "KEYSTILE_SECRET_KEY": base64.b64encode(bytes(32)).decode(),
            },
            "must use https",
        ),
        ({"KEYSTILE_DATABASE_URL": "mysql://x/y"}, "must start with sqlite"),
        ({"KEYSTILE_SECRET_KEY": "changeme"}, "placeholder"),
    ],
)
def test_refused_settings_say_what_to_fix(monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigurationError, match=message):
        Settings().check()


def test_public_url_must_be_absolute(monkeypatch):
    monkeypatch.setenv("KEYSTILE_PUBLIC_URL", "portal")
    with pytest.raises(ValueError, match="absolute"):
        Settings()


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("a.localhost", True),
        ("example.com", False),
        ("10.0.0.1", False),
        (None, False),
    ],
)
def test_loopback_hosts(host, ok):
    assert is_loopback_host(host) is ok
