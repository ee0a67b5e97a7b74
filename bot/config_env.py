"""config.yaml's keys from the environment: DIGESTBOT_<SECTION>__<KEY>, their *_FILE forms, secret files.

pydantic-settings turns the variables into the nested mapping a config file would hold (lists,
mappings and whole sections as JSON or YAML; plain values as pydantic reads them from text);
bot/config.py lays that over the file's mapping and validates both at once, so a bad value reads
the same whichever gave it, and the error names the variable as well as the key.
"""

from __future__ import annotations

import collections.abc
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource, SettingsError

from digests.config import model_in, near_miss
from digests.errors import ConfigError

PREFIX = "DIGESTBOT_"
DELIMITER = "__"
FILE_SUFFIX = "_FILE"
CONFIG_PATH = "DIGESTBOT_CONFIG"
SECRETS_DIR = "DIGESTBOT_SECRETS_DIR"
DEFAULT_SECRETS_DIR = "/run/secrets"  # where Docker and compose mount secrets
# Names from before any key could be set: still read, for the key they always set.
ALIASES = {"DIGESTBOT_TOKEN": "DIGESTBOT_TELEGRAM__TOKEN", "DIGESTBOT_DATABASE_URL": "DIGESTBOT_DATABASE__URL"}
# DIGESTBOT_ variables the app reads that are no config key.
NON_CONFIG = frozenset({CONFIG_PATH, SECRETS_DIR})
_LISTS = (list, tuple, set, frozenset, collections.abc.Sequence)


@functools.cache
def setting_names(model: type[BaseModel]) -> Mapping[str, tuple[str, ...]]:
    """Every variable that sets a key of model: DIGESTBOT_PUBLISH__CONCURRENCY -> ("publish", "concurrency").

    Sections get a name of their own too (DIGESTBOT_PUBLISH='{concurrency: 2}'); a list of
    sections, like channels, is one value (DIGESTBOT_CHANNELS='[{"name": ...}]').
    """
    names: dict[str, tuple[str, ...]] = {}

    def walk(section: type[BaseModel], path: tuple[str, ...]) -> None:
        for key, info in section.model_fields.items():
            here = (*path, key)
            names[PREFIX + DELIMITER.join(here).upper()] = here
            sub = model_in(info.annotation)
            if sub is not None and get_origin(info.annotation) not in _LISTS:
                walk(sub, here)

    walk(model, ())
    return names


def known_name(model: type[BaseModel], name: str) -> bool:
    """Whether the app reads this environment variable (as a key of model, an old name or otherwise)."""
    name = name.upper()
    if name in NON_CONFIG:
        return True
    return _canonical(model, name.removesuffix(FILE_SUFFIX) if name.endswith(FILE_SUFFIX) else name) is not None


def _canonical(model: type[BaseModel], name: str) -> str | None:
    name = ALIASES.get(name, name)
    return name if name in setting_names(model) else None


def _key(name: str) -> str:
    return name.removeprefix(PREFIX).lower().replace(DELIMITER, ".")


def _unknown(model: type[BaseModel], given: str, label: str) -> str:
    """`NAME (key.path): unknown key`, with the likeliest name meant when one is close."""
    name = given.upper()
    stem, suffix = (name.removesuffix(FILE_SUFFIX), FILE_SUFFIX) if name.endswith(FILE_SUFFIX) else (name, "")
    choices = [n.removeprefix(PREFIX) for n in (*setting_names(model), *ALIASES)]
    meant = near_miss(stem.removeprefix(PREFIX), choices)
    suggestion = PREFIX + meant + suffix if meant else name
    hint = ""
    if suggestion != name:  # a secret file named NAME_FILE: the name itself is close, and no help
        hint = f"; did you mean {suggestion if given.isupper() else suggestion.lower()}?"
    return f"{label} ({_key(stem)}): unknown key{hint}"


@dataclass
class EnvLayer:
    """The keys the environment sets, nested like config.yaml, and where each came from."""

    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[tuple[Any, ...], str] = field(default_factory=dict)  # key path -> variable or file


def read_environment(model: type[BaseModel], env: Mapping[str, str]) -> EnvLayer:
    """The keys of model the environment sets: variables, their *_FILE forms, then secret files.

    Precedence, high to low: a variable (or its _FILE), a file in $DIGESTBOT_SECRETS_DIR
    (default /run/secrets) or systemd's $CREDENTIALS_DIRECTORY named like the variable.
    ConfigError names every unknown DIGESTBOT_ variable or file and every unreadable one.
    """
    values: dict[str, tuple[str, str]] = {}  # canonical name -> (text, what to call it in errors)
    problems: list[str] = []
    for raw, value in sorted(env.items()):
        name = raw.upper()
        if not name.startswith(PREFIX) or name in NON_CONFIG:
            continue
        text: str | None = value
        canonical = _canonical(model, name)
        if canonical is None and name.endswith(FILE_SUFFIX):
            canonical = _canonical(model, name.removesuffix(FILE_SUFFIX))
            text = _read_secret(Path(value), raw, problems) if canonical and value else None
        if canonical is None:
            problems.append(_unknown(model, raw, raw))
            continue
        if not text:  # compose's ${VAR:-} leaves a variable empty: as if it were not set
            continue
        if canonical in values and values[canonical][0] != text:
            problems.append(f"{values[canonical][1]} and {raw} both set {_key(canonical)}, differently: keep one")
            continue
        values.setdefault(canonical, (text, raw))
    for directory in _secret_dirs(env):
        try:
            paths = sorted(directory.iterdir())
        except OSError as exc:
            problems.append(f"{directory}: cannot list the secret files: {exc.strerror or exc}")
            continue
        for path in paths:
            name = path.name.upper()
            if path.name.startswith(".") or not name.startswith(PREFIX) or not path.is_file():
                continue
            canonical = _canonical(model, name)
            if canonical is None:
                problems.append(_unknown(model, path.name, str(path)))
                continue
            text = _read_secret(path, str(path), problems)
            if text:
                values.setdefault(canonical, (text, str(path)))
    if problems:
        raise ConfigError("environment: invalid configuration\n  " + "\n  ".join(problems))
    labels = {name: label for name, (_, label) in values.items()}
    layer = EnvLayer(data=_nested(model, {name: text for name, (text, _) in values.items()}, labels))
    for name, label in labels.items():
        layer.origins[setting_names(model)[name]] = label
    return layer


def _secret_dirs(env: Mapping[str, str]) -> list[Path]:
    # systemd's LoadCredential= puts files in $CREDENTIALS_DIRECTORY; Docker mounts /run/secrets.
    given = [env.get(SECRETS_DIR) or DEFAULT_SECRETS_DIR, env.get("CREDENTIALS_DIRECTORY") or ""]
    return [Path(d) for d in given if d and Path(d).is_dir()]


def _read_secret(path: Path, label: str, problems: list[str]) -> str | None:
    try:
        return path.read_text(encoding="utf-8-sig").strip()  # `echo token > file` leaves a newline
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problems.append(f"{label}: cannot read {path}: {reason}")
        return None


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping; lists and sections read as YAML."""

    def __init__(self, model: type[BaseModel], variables: Mapping[str, str]) -> None:
        # The source reads only the model's fields and config: BotConfig stays a plain model, so
        # validating a mapping (tests, the demo) never reads the environment.
        super().__init__(cast(Any, model), case_sensitive=False, env_prefix=PREFIX, env_nested_delimiter=DELIMITER)
        self.env_vars = {name.lower(): text for name, text in variables.items()}  # not os.environ: ours

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:  # YAML reads JSON too, and lets a list of paths go unquoted: [/srv/archive]
            return yaml.safe_load(value)
        except yaml.MarkedYAMLError as exc:
            where = f" at character {exc.problem_mark.column + 1}" if exc.problem_mark else ""
            raise ValueError(f"{exc.problem or exc.context}{where}") from None
        except yaml.YAMLError as exc:
            raise ValueError(str(exc)) from None


def _nested(model: type[BaseModel], variables: dict[str, str], labels: Mapping[str, str]) -> dict[str, Any]:
    """The variables as config.yaml's nesting; ConfigError names a list or section that does not parse."""
    try:
        return _MappingSource(model, variables)()
    except SettingsError:
        pass
    for name, text in variables.items():  # one value does not parse: find it, name it
        try:
            _MappingSource(model, {name: text})()
        except SettingsError as exc:
            reason = exc.__cause__ or exc
            raise ConfigError(
                f"environment: invalid configuration\n  {labels[name]} ({_key(name)}): not valid JSON or YAML "
                f"({reason}); a list looks like '[1, 2]', a section like '{{\"key\": \"value\"}}'"
            ) from None
    raise ConfigError("environment: invalid configuration")  # unreachable: the whole failed, so one part does
