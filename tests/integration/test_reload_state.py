"""The reload state `mailbot run` reports (/healthz, `check`): the templates in force
are the last ones that all rendered, however many reloads came since."""

from __future__ import annotations

from pathlib import Path

from mailbot.cli.app import App
from mailbot.cli.run_reload import Reloader
from mailbot.config import load_settings
from mailbot.daemon.health import in_force
from mailbot.templating.render import templates_version


def _app(tmp_path: Path) -> App:
    site = tmp_path / "templates"
    (site / "en").mkdir(parents=True)
    cfg = tmp_path / "mailbot.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\ntemplates_dir = "{site}"\n')
    return App(load_settings(str(cfg)))


def test_a_failed_templates_reload_after_a_good_one_keeps_the_good_one(tmp_path: Path) -> None:
    app = _app(tmp_path)
    site = tmp_path / "templates"
    started = templates_version(str(site))
    reloader = Reloader(app, None, log_level_fixed=True)
    assert in_force(reloader.status(), None)["templates"] == started

    (site / "en" / "approved.subject.j2").write_text("Approved: {{ code }}")
    reloader()
    good = templates_version(str(site))
    assert good != started
    assert reloader.status()["templates"]["error"] is None
    assert in_force(reloader.status(), None)["templates"] == good

    (site / "en" / "approved.subject.j2").write_text("Approved: {{ code ")  # a syntax error
    reloader()
    status = reloader.status()
    assert status["templates"]["error"]
    # the broken files are not in force: the last good version is, not the one started with
    assert in_force(status, started)["templates"] == good
