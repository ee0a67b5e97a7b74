"""The deploy files: Dockerfile, compose.yaml and the systemd unit, tested as far as this machine can.

No image is built here (no registry for base images). What the image would do is run instead:
the package installed into a clean venv from exactly what the Dockerfile copies, then the
image's CMD and HEALTHCHECK, with its ENV, against a database in a folder standing in for /data.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from bot.cli import build_parser
from bot.config import known_env_name

ROOT = Path(__file__).resolve().parent.parent


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines()
                                              if not line.lstrip().startswith("#")))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(part, str) for part in value), args
    return value


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in final_stage():
        if keyword == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", args):
                env[name] = value
    return env


def healthcheck_command() -> list[str]:
    [args] = [args for keyword, args in final_stage() if keyword == "HEALTHCHECK"]
    options, _, command = args.partition("CMD ")
    assert "--timeout=" in options and "--start-period=" in options
    return exec_form(command)


def cmd() -> list[str]:
    [args] = [args for keyword, args in final_stage() if keyword == "CMD"]
    return exec_form(args)


def parses(argv: list[str]) -> argparse.Namespace:
    assert argv[0] == "digestbot"
    return build_parser().parse_args(argv[1:])


def test_the_image_runs_digestbot_as_a_non_root_user_with_the_database_in_a_volume() -> None:
    steps = final_stage()
    assert all(args.startswith("python:3.11-slim") for keyword, args in dockerfile() if keyword == "FROM")
    [user] = [args for keyword, args in steps if keyword == "USER"]
    assert user not in ("root", "0") and not user.startswith("0:")
    assert any(keyword == "RUN" and "useradd --system --uid 10001 --user-group" in args and user in args
               for keyword, args in steps)
    [volume] = [exec_form(args) for keyword, args in steps if keyword == "VOLUME"]
    assert volume == ["/data"]
    env = image_env()
    assert env["DIGESTBOT_DATABASE_URL"] == "sqlite:////data/digest.db"  # inside the volume
    assert all(known_env_name(name) for name in env if name.startswith("DIGESTBOT_"))
    # The entry command and the health check are digestbot commands this version knows.
    assert cmd() == ["digestbot", "run"] and parses(cmd()).command == "run"
    assert healthcheck_command() == ["digestbot", "health"] and parses(healthcheck_command()).command == "health"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"digestbot": "bot.cli:main"}


def build_context(target: Path) -> Path:
    """What the Dockerfile's build stage COPYs, copied into target (with .dockerignore's exclusions)."""
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    patterns = [pattern.removeprefix("**/") for pattern in ignored]
    target.mkdir(parents=True)
    for keyword, args in dockerfile():
        if keyword == "COPY" and not args.startswith("--from"):
            *sources, _destination = args.split()
            for source in sources:
                path = ROOT / source
                if path.is_dir():
                    shutil.copytree(path, target / source, ignore=shutil.ignore_patterns(*patterns))
                else:
                    shutil.copy2(path, target / source)
    return target


def _wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


@pytest.mark.slow
def test_the_image_entry_command_and_health_check_work_from_a_clean_install(tmp_path: Path) -> None:
    """pip install of what the image copies, then CMD and HEALTHCHECK as the container would run them."""
    context = build_context(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # Offline: the third-party packages come from this test's environment (a .pth line), the
    # project itself is built and installed from the copied context, not found on sys.path.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("DIGESTBOT_")}
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                              "--no-build-isolation", str(context)], capture_output=True, text=True, env=clean,
                             timeout=300)
    if install.returncode != 0 and ("invalid command 'bdist_wheel'" in install.stderr
                                    or "No module named 'setuptools'" in install.stderr):
        pytest.skip("cannot build the package offline here: the clean venv's setuptools needs `wheel` "
                    "(the test extra installs it)")
    assert install.returncode == 0, install.stderr
    bindir = venv / "bin"
    where = subprocess.run([str(python), "-c", "import bot, digests; print(bot.__file__, digests.__file__)"],
                           capture_output=True, text=True, env=clean, cwd=tmp_path, check=True).stdout
    assert all(path.startswith(site) for path in where.split()), where  # the installed copy, not the worktree
    said = subprocess.run([str(python), "-c", "from bot.i18n import translations as t; print(t('zh_CN').gettext('Nothing found'))"],
                          capture_output=True, text=True, env=clean, cwd=tmp_path, check=True).stdout
    assert said.strip() == "没有找到"  # the message catalogs are package data

    data = tmp_path / "data"  # stands in for the /data volume
    data.mkdir()
    env = {**clean, **image_env()}
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    env["DIGESTBOT_DATABASE_URL"] = env["DIGESTBOT_DATABASE_URL"].replace("/data/", f"{data}/")

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=data, timeout=60)

    before = run(healthcheck_command())
    assert before.returncode == 1 and "no database file" in before.stderr
    bot = subprocess.Popen(cmd(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=data)
    try:
        assert _wait_for(lambda: run(healthcheck_command()).returncode == 0, 60), run(healthcheck_command()).stderr
    finally:
        bot.send_signal(signal.SIGTERM)
        output, _ = bot.communicate(timeout=30)
    assert bot.returncode == 0, output
    assert "dry run" in output  # no token: nothing reaches Telegram
    after = run(healthcheck_command())
    assert after.returncode == 1 and "no heartbeat" in after.stderr
    # The package data made it into the install: migrations ran, the sample archive and templates are there.
    demo = run(["digestbot", "demo", "--workdir", str(tmp_path / "demo")])
    assert demo.returncode == 0, demo.stderr


# ---------------------------------------------------------------------------------------------
# compose.yaml


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def commented_services() -> dict:
    """The services shown commented out (the second worker), as YAML once uncommented."""
    lines = (ROOT / "compose.yaml").read_text(encoding="utf-8").splitlines()
    block = [line[4:] for line in lines if line.startswith("  # ") and not line.startswith("  #   #")]
    start = next(i for i, line in enumerate(block) if re.fullmatch(r"\w+:", line))
    return yaml.safe_load("\n".join(block[start:]))


def bot_env_names(service: dict) -> set[str]:
    environment = service.get("environment", {})
    return set(environment if isinstance(environment, dict) else (e.split("=", 1)[0] for e in environment))


def test_compose_runs_the_bot_on_postgresql_with_a_named_volume_and_known_env_names() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"bot", "postgres"}
    postgres, bot = services["postgres"], services["bot"]
    [data] = postgres["volumes"]
    volume, _, mount = data.partition(":")
    assert volume in spec["volumes"] and mount == "/var/lib/postgresql/data"  # a named volume
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert bot["restart"] == "unless-stopped" and "healthcheck" not in bot  # the image's HEALTHCHECK applies
    names = bot_env_names(bot)
    assert {"DIGESTBOT_TOKEN", "DIGESTBOT_DATABASE_URL", "DIGESTBOT_CONFIG"} <= names
    assert all(known_env_name(name) for name in names), sorted(n for n in names if not known_env_name(n))
    assert bot["environment"]["DIGESTBOT_DATABASE_URL"].startswith("postgresql+psycopg://digestbot:")
    config_target = bot["environment"]["DIGESTBOT_CONFIG"]
    assert any(v.split(":")[1] == config_target for v in bot["volumes"])  # the config file is mounted there

    worker = commented_services()["worker2"]
    assert worker["image"] == bot["image"]
    assert all(known_env_name(name) for name in bot_env_names(worker))
    assert bot_env_names(worker) == names


# ---------------------------------------------------------------------------------------------
# the systemd unit


UNIT = ROOT / "deploy" / "digestbot.service"


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_unit_restarts_always_and_is_hardened() -> None:
    settings = unit_settings()
    assert settings["Restart"] == ["always"]
    assert settings["ExecStart"][0].endswith("/digestbot run")
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "ProtectHome": "yes", "CapabilityBoundingSet": ""}.items():
        assert settings[key] == [value], key
    assert settings["User"] != ["root"]
    env = dict(entry.split("=", 1) for entry in settings["Environment"])
    assert all(known_env_name(name) for name in env if name.startswith("DIGESTBOT_"))
    # The SQLite database (and its -wal/-shm files) lies in the one writable folder.
    database = Path(env["DIGESTBOT_DATABASE_URL"].removeprefix("sqlite:///"))
    assert str(database.parent) in settings["ReadWritePaths"]
    assert settings["WorkingDirectory"] == [str(database.parent)]


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    # verify checks that ExecStart exists: point it at this environment's digestbot (or true).
    executable = shutil.which("digestbot") or shutil.which("true")
    assert executable is not None
    text = UNIT.read_text(encoding="utf-8").replace("/opt/digestbot/.venv/bin/digestbot", executable)
    unit = tmp_path / "digestbot.service"
    unit.write_text(text, encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # Any output is a finding: an unknown key is only a warning, with exit status 0.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
