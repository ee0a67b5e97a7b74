"""Config from the environment: DIGESTBOT_<SECTION>__<KEY>, *_FILE, secret files; errors that name the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from bot.cli.publish import SAMPLE_ARCHIVE
from bot.config import BotConfig, known_env_name, load_config
from bot.config_env import setting_names
from digests.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CHANNEL = {"name": "main", "chat_id": "@env_channel", "schedule": ["every 2h"], "per_slot": 2}


def config_file(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def load_error(path: Path | None, env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    return str(caught.value)


def test_every_kind_of_key_from_the_environment(tmp_path: Path) -> None:
    config = load_config(None, env={
        "DIGESTBOT_TELEGRAM__ADMINS": "[1, 2]",
        "DIGESTBOT_TELEGRAM__POLL_COMMANDS": "false",
        "DIGESTBOT_TELEGRAM__TOKEN": "123:abc",
        "DIGESTBOT_PUBLISH__CONCURRENCY": "2",
        "DIGESTBOT_PUBLISH__BACKOFF_SECONDS": "1.5",
        "DIGESTBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'env.db'}",
        "DIGESTBOT_ARCHIVE__PATHS": "[/srv/archive, /srv/more]",  # YAML: paths need no quotes
        "DIGESTBOT_LIMITS": '{"channel_per_minute": 10}',  # a whole section at once
        "DIGESTBOT_CHANNELS": json.dumps([CHANNEL]),
        "DIGESTBOT_TELEGRAM__WEBHOOK__URL": "https://bot.example.org/tg",
        "DIGESTBOT_TELEGRAM__WEBHOOK__SECRET_TOKEN": "s3cret",
        "DIGESTBOT_LOG_LEVEL": "DEBUG",
        "HOME": "/elsewhere",  # not ours: ignored
    })
    assert config.telegram.admins == [1, 2] and config.telegram.poll_commands is False
    assert config.token == "123:abc" and config.publish.concurrency == 2 and config.publish.backoff_seconds == 1.5
    assert config.database.url.endswith("env.db") and config.archive.paths == ["/srv/archive", "/srv/more"]
    assert config.limits.channel_per_minute == 10 and config.limits.global_per_second == 30
    assert [(c.name, c.chat_id, c.per_slot) for c in config.channels] == [("main", "@env_channel", 2)]
    assert config.telegram.webhook is not None and config.telegram.webhook.path == "/tg"
    assert config.log_level == "DEBUG"


def test_the_environment_over_the_file_over_the_defaults(tmp_path: Path) -> None:
    path = config_file(tmp_path, {"publish": {"concurrency": 3, "max_attempts": 4},
                                  "telegram": {"admins": [7], "request_timeout": 9}, "channels": [CHANNEL]})
    config = load_config(path, env={"DIGESTBOT_PUBLISH__CONCURRENCY": "5", "DIGESTBOT_TELEGRAM__ADMINS": "[8]"})
    assert (config.publish.concurrency, config.publish.max_attempts, config.publish.lease_seconds) == (5, 4, 120)
    assert (config.telegram.admins, config.telegram.request_timeout) == ([8], 9)
    assert [c.name for c in config.channels] == ["main"]  # the file's channels, the environment has none
    other = {**CHANNEL, "name": "other"}
    replaced = load_config(path, env={"DIGESTBOT_CHANNELS": json.dumps([other])})
    assert [c.name for c in replaced.channels] == ["other"]


def test_the_old_names_keep_working(tmp_path: Path) -> None:
    config = load_config(None, env={"DIGESTBOT_TOKEN": "1:old", "DIGESTBOT_DATABASE_URL": "sqlite:///old.db"})
    assert (config.token, config.database.url) == ("1:old", "sqlite:///old.db")
    same = load_config(None, env={"DIGESTBOT_TOKEN": "1:old", "DIGESTBOT_TELEGRAM__TOKEN": "1:old"})
    assert same.token == "1:old"
    message = load_error(None, {"DIGESTBOT_TOKEN": "1:old", "DIGESTBOT_TELEGRAM__TOKEN": "1:new"})
    assert "DIGESTBOT_TELEGRAM__TOKEN and DIGESTBOT_TOKEN both set telegram.token, differently: keep one" in message


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("1:from-file\n", encoding="utf-8")
    (tmp_path / "key").write_text("sk-file", encoding="utf-8")
    config = load_config(None, env={"DIGESTBOT_TOKEN_FILE": str(tmp_path / "token"),
                                    "DIGESTBOT_COMMENTATOR__API_KEY_FILE": str(tmp_path / "key"),
                                    "DIGESTBOT_SECRETS_DIR": str(tmp_path / "none")})
    assert config.token == "1:from-file" and config.commentator.api_key.get_secret_value() == "sk-file"
    message = load_error(None, {"DIGESTBOT_TOKEN_FILE": str(tmp_path / "missing")})
    assert f"DIGESTBOT_TOKEN_FILE: cannot read {tmp_path / 'missing'}: No such file or directory" in message


def test_docker_secrets_are_read_below_the_variables(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "digestbot_token").write_text("1:docker\n", encoding="utf-8")
    (secrets / "DIGESTBOT_DATABASE__URL").write_text("sqlite:///secret.db", encoding="utf-8")
    (secrets / "postgres_password").write_text("not ours", encoding="utf-8")
    path = config_file(tmp_path, {"telegram": {"token": "1:file"}})
    env = {"DIGESTBOT_SECRETS_DIR": str(secrets)}
    config = load_config(path, env=env)
    assert (config.token, config.database.url) == ("1:docker", "sqlite:///secret.db")
    assert load_config(path, env={**env, "DIGESTBOT_TOKEN": "1:env"}).token == "1:env"
    (secrets / "digestbot_tokn").write_text("x", encoding="utf-8")
    message = load_error(path, env)
    assert f"{secrets / 'digestbot_tokn'} (tokn): unknown key; did you mean digestbot_token?" in message


def test_errors_name_the_variable_and_the_key(tmp_path: Path) -> None:
    message = load_error(None, {"DIGESTBOT_PUBLISH__CONCURRENCY": "0", "DIGESTBOT_TELEGRAM__ADMINS": "[1, x]"})
    assert message.startswith("environment: invalid configuration")
    assert "DIGESTBOT_PUBLISH__CONCURRENCY (publish.concurrency): Input should be greater than or equal to 1" \
        in message
    assert "DIGESTBOT_TELEGRAM__ADMINS (telegram.admins[1]): Input should be a valid integer" in message
    path = config_file(tmp_path, {"publish": {"max_attempts": 0}})
    message = load_error(path, {"DIGESTBOT_CHANNELS": json.dumps([{**CHANNEL, "chat_id": "no"}])})
    assert message.startswith(f"{path}: invalid configuration")
    assert "\n  publish.max_attempts: Input should be greater than or equal to 1" in message
    assert "DIGESTBOT_CHANNELS (channels[0:main].chat_id): must be a numeric chat id" in message


def test_a_list_that_does_not_parse_names_its_variable() -> None:
    message = load_error(None, {"DIGESTBOT_TELEGRAM__ADMINS": "[1, 2"})
    assert "DIGESTBOT_TELEGRAM__ADMINS (telegram.admins): not valid JSON or YAML" in message
    message = load_error(None, {"DIGESTBOT_ARCHIVE__PATHS": "/srv/archive"})
    assert "DIGESTBOT_ARCHIVE__PATHS (archive.paths): Input should be a valid list (in YAML or JSON: '[a, b]')" \
        in message


def test_unknown_variables_are_errors_with_the_name_meant() -> None:
    message = load_error(None, {"DIGESTBOT_PUBLISH__CONCURENCY": "2", "DIGESTBOT_TELEGRAM_ADMINS": "[1]",
                                "DIGESTBOT_WHATEVER": "1", "DIGESTBOT_CONFIG": "elsewhere.yaml"})
    assert ("DIGESTBOT_PUBLISH__CONCURENCY (publish.concurency): unknown key; "
            "did you mean DIGESTBOT_PUBLISH__CONCURRENCY?") in message
    assert "DIGESTBOT_TELEGRAM_ADMINS (telegram_admins): unknown key; did you mean DIGESTBOT_TELEGRAM__ADMINS?" \
        in message
    assert "DIGESTBOT_WHATEVER (whatever): unknown key\n" in message + "\n"
    assert "DIGESTBOT_CONFIG" not in message


def test_near_misses_in_the_file_are_named(tmp_path: Path) -> None:
    path = config_file(tmp_path, {"telegran": {}, "publish": {"concurency": 2},
                                  "channels": [{**CHANNEL, "link_previews": True, "colour": "red"}]})
    message = load_error(path, {})
    assert "telegran: unknown key; did you mean telegram?" in message
    assert "publish.concurency: unknown key; did you mean concurrency?" in message
    assert "channels[0:main].link_previews: unknown key; did you mean link_preview?" in message
    assert "channels[0:main].colour: unknown key\n" in message + "\n"


def test_a_section_from_the_environment_says_why_it_is_there() -> None:
    message = load_error(None, {"DIGESTBOT_TELEGRAM__WEBHOOK__SECRET_TOKEN": "s3cret"})
    assert ("telegram.webhook.url: Field required; telegram.webhook gets keys from "
            "DIGESTBOT_TELEGRAM__WEBHOOK__SECRET_TOKEN") in message


def test_the_cli_says_which_variable_is_wrong(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGESTBOT_PUBLISH__CONCURRENCY", "many")
    assert main(["items"]) == 2
    err = capsys.readouterr().err
    assert "DIGESTBOT_PUBLISH__CONCURRENCY (publish.concurrency): Input should be a valid integer" in err
    assert "Traceback" not in err


def test_every_documented_key_has_its_variable() -> None:
    """The names come from the model: every key config.example.yaml shows is settable, with its _FILE."""
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))

    def paths(node: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        if isinstance(node, dict) and path != ("channels",):
            return [p for key, value in node.items() for p in paths(value, (*path, key))]
        return [path]

    for path in paths(example, ()):
        name = "DIGESTBOT_" + "__".join(path).upper()
        assert known_env_name(name) and known_env_name(name + "_FILE"), name
        assert setting_names(BotConfig)[name] == path
    for name in ("DIGESTBOT_TOKEN", "DIGESTBOT_TOKEN_FILE", "DIGESTBOT_DATABASE_URL", "DIGESTBOT_CONFIG",
                 "DIGESTBOT_TELEGRAM__WEBHOOK__SECRET_TOKEN_FILE"):
        assert known_env_name(name), name
    assert not known_env_name("DIGESTBOT_CHANNELS__0__NAME") and not known_env_name("DIGESTBOT_NOPE")


@pytest.mark.slow
def test_a_config_given_only_by_the_environment_runs_the_demo(tmp_path: Path) -> None:
    """No config file, a clean environment: ingest the sample archive, publish a slot in dry run."""
    env = {
        "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
        "DIGESTBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'env.db'}",
        "DIGESTBOT_ARCHIVE__PATHS": json.dumps([str(SAMPLE_ARCHIVE)]),
        "DIGESTBOT_CHANNELS": json.dumps([{"name": "column", "chat_id": "@hardcore_demo", "mode": "digest",
                                           "per_slot": 3, "schedule": ["0 9 * * *"]}]),
        "DIGESTBOT_PUBLISH__CONCURRENCY": "2",
        "DIGESTBOT_TELEGRAM__ADMINS": "[1, 2]",
    }

    def digestbot(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    report = json.loads(digestbot("ingest", "--json").stdout)
    assert report["items"]["new"] > 0 and report["documents"]["failed"] == 0
    published = digestbot("publish", "--once", "--dry-run")
    assert "[dry-run → column]" in published.stdout
    [row] = json.loads(digestbot("deliveries", "--json").stdout)
    assert row["channel"] == "column" and row["state"] == "dry-run" and len(row["item_ids"]) == 3
    assert not (tmp_path / "config.yaml").exists()
