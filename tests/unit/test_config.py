"""Config layering and validation: defaults <- file <- environment; errors name key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot import resources
from mailbot.config import load_settings
from mailbot.core.errors import ConfigError


def test_defaults_without_file_or_environment() -> None:
    s = load_settings(environ={})
    assert s.imap.folders == ("INBOX",)
    assert s.imap.tls == "ssl"
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("mailbot.db")
    assert s.source == "defaults"


def test_file_then_environment_override(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        '[imap]\nhost = "imap.test"\nport = 143\ntls = "starttls"\n'
        'folders = ["INBOX", "Claims"]\n[smtp]\npassword = "from-file"\n'
    )
    s = load_settings(
        cfg, environ={"MAILBOT_SMTP_PASSWORD": "from-env", "MAILBOT_IMAP_IDLE": "false"}
    )
    assert (s.imap.host, s.imap.port, s.imap.tls) == ("imap.test", 143, "starttls")
    assert s.imap.folders == ("INBOX", "Claims")
    assert s.smtp.password == "from-env"
    assert s.imap.idle is False
    assert s.redacted()["smtp"]["password"] == "***"
    assert str(cfg) in s.source and "environment" in s.source


def test_config_from_environment_variable(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text("[ocr]\nworkers = 2\n")
    assert load_settings(environ={"MAILBOT_CONFIG": str(cfg)}).ocr.workers == 2


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[imap]\nprot = 1\n", "imap.prot"),
        ('[imap]\nport = "993"\n', "expected an integer"),
        ('[imap]\ntls = "maybe"\n', "must be one of ssl, starttls, none"),
        ("[nosuch]\nx = 1\n", "unknown section [nosuch]"),
        ('[imap]\nfolders = "INBOX"\n', "expected a list of strings"),
        ("[imap\n", "TOML syntax"),
    ],
)
def test_bad_file_names_key_and_file(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert needle in str(err.value)
    assert str(cfg) in str(err.value)


def test_bad_environment_names_variable() -> None:
    with pytest.raises(ConfigError, match="MAILBOT_IMAP_POLL_SECONDS"):
        load_settings(environ={"MAILBOT_IMAP_POLL_SECONDS": "soon"})
    with pytest.raises(ConfigError, match=r"unknown key imap\.bogus"):
        load_settings(environ={"MAILBOT_IMAP_BOGUS": "1"})


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_example_config_is_valid_and_documents_every_key() -> None:
    example = resources.example_config()
    s = load_settings(example, environ={})
    assert s.imap.host == "imap.example.com"
    text = example.read_text()
    for section, values in s.redacted().items():
        if not isinstance(values, dict):
            continue
        assert f"[{section}]" in text
        for key in values:
            assert f"\n{key} = " in text, f"{section}.{key} missing from the example"
