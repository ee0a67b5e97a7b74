"""Start-up configuration: a bad template stops the bot naming its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main


def test_bad_template_stops_start_up_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "layouts").mkdir()
    (tmp_path / "layouts" / "single.j2").write_text("<b>{{ title }}</b>\n{% if summary %}\n{{ summary }\n",
                                                    encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text("channels:\n  - {name: main, chat_id: '@main_channel', templates: {single: layouts/single.j2}}\n",
                      encoding="utf-8")
    assert main(["--config", str(config), "preview"]) == 2
    err = capsys.readouterr().err
    assert f"template {tmp_path / 'layouts' / 'single.j2'} line 3" in err and "Traceback" not in err


def test_good_template_is_resolved_next_to_the_config(tmp_path: Path) -> None:
    from bot.config import load_config

    (tmp_path / "mine.j2").write_text("<b>{{ title }}</b>\n\n{{ summary }}\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text("channels:\n  - {name: main, chat_id: '@main_channel', templates: {single: mine.j2}}\n",
                      encoding="utf-8")
    loaded = load_config(config, env={})
    assert loaded.channels[0].templates.single == str(tmp_path / "mine.j2")
