"""Reading ``config.toml``: the file found, its relative paths placed, the environment applied, and each
validation error written as the file's key, its bad value and why.
"""

from __future__ import annotations

import os
import tomllib
import typing
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from proxy.config.models import Config, ConfigError, DatabaseConfig, _section_in

DEFAULT_CONFIG_PATH = "config.toml"


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file.

    The path is ``path``, else ``$TOLLGATE_CONFIG``, else ``./config.toml``. A
    missing default file means "all defaults"; a missing named file is an error.
    Relative paths of the file (and the defaults') mean its folder, so that every
    command given the same file finds the same database and journal, wherever it
    runs; ``$TOLLGATE_DATABASE_URL`` is taken as it is, relative to the current folder.
    """
    env = os.environ if environ is None else environ
    explicit = path is not None or "TOLLGATE_CONFIG" in env
    file = Path(path if path is not None else env.get("TOLLGATE_CONFIG", DEFAULT_CONFIG_PATH))
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{file}: config file not found") from None
        return _apply_env(Config(), env)
    return _apply_env(_relative_to(parse_config(text, str(file)), file.absolute().parent), env)


def _relative_to(config: Config, folder: Path) -> Config:
    """``config`` with its relative SQLite file and journal folder made absolute, under ``folder``."""
    journal = Path(config.recorder.journal_dir)
    return config.model_copy(
        update={
            "database": DatabaseConfig(url=_sqlite_url_under(config.database.url, folder)),
            "recorder": config.recorder.model_copy(update={"journal_dir": str(folder / journal)}),
        }
    )


def _sqlite_url_under(url: str, folder: Path) -> str:
    """A ``sqlite:///relative/path.db`` URL (any driver, any query) as an absolute one; others unchanged."""
    scheme, found, rest = url.partition(":///")
    if not found or not scheme.startswith("sqlite"):
        return url
    database, query_mark, query = rest.partition("?")
    # An empty path and ":memory:" are in memory; "file:" is a URI filename, which SQLite reads itself.
    if database in ("", ":memory:") or database.startswith(("/", "file:")):
        return url
    return f"{scheme}:///{folder / database}{query_mark}{query}"


def _apply_env(config: Config, env: Mapping[str, str]) -> Config:
    """``$TOLLGATE_DATABASE_URL`` and ``$TOLLGATE_JOURNAL_DIR`` over the file's values (a container sets them)."""
    url = env.get("TOLLGATE_DATABASE_URL")
    if url:
        config = config.model_copy(update={"database": DatabaseConfig(url=url)})
    journal_dir = env.get("TOLLGATE_JOURNAL_DIR")
    if journal_dir:
        config = config.model_copy(update={"recorder": config.recorder.model_copy(update={"journal_dir": journal_dir})})
    return config


def parse_config(text: str, source: str = "config.toml") -> Config:
    """Validate TOML text into a ``Config``; errors name ``source``, one line per problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        return Config.model_validate(data, context={"source": source})
    except ValidationError as exc:
        raise ConfigError("\n".join(f"{source}: {_describe(e)}" for e in exc.errors(include_url=False))) from None


# pydantic's error types, in the words of a config file.
_WHY = {
    "int_type": "must be an integer",
    "float_type": "must be a float",
    "string_type": "must be a str",
    "bool_type": "must be a bool",
    "decimal_type": "must be a number or a decimal string",
    "decimal_parsing": "must be a number or a decimal string",
    "finite_number": "must be a number or a decimal string",
}


def _describe(error: ErrorDetails) -> str:
    """One validation error as ``key = value why``, or as the shape a table must have."""
    loc, kind, ctx = error["loc"], error["type"], error.get("ctx", {})
    key = _key(loc)
    if kind == "tollgate_message":
        return str(ctx["message"])
    if kind == "tollgate":
        # A table's own check names a key inside it (scope, in limits[0]); the file's names a whole key.
        named = f"{_key((*loc, ctx['key']))}" if loc and ctx["key"] else ctx["key"] or key
        return f"{named} = {ctx['value']!r} {ctx['why']}"
    if kind == "value_error":  # raised by a check outside this module, in its own words
        return str(ctx["error"])
    if kind == "extra_forbidden":
        # An alias in brackets ([pricing.tools]) is a table inside another key's table, not a key of its own.
        valid = sorted(k for k in _file_keys(_hint_at(loc[:-1])) if not k.startswith("["))
        return f"unknown key {key!r}; valid keys: {', '.join(valid)}"
    if kind == "model_type":
        return _array_of_tables(key) if isinstance(loc[-1], int) else f"[{key}] must be a table"
    if kind == "dict_type":  # the only table of tables is [teams.<id>]
        return f"{key} must be tables, written [{key}.<id>]"
    why = _WHY.get(kind, f"is refused: {error['msg']}")
    if kind == "tuple_type":
        item = typing.get_args(_hint_at(loc))[0]
        if _section_in(item):
            return _array_of_tables(key)
        why = f"must be a list of {'numbers' if item is Decimal else 'strings'}"
    return f"{key} = {error['input']!r} {why}"


def _array_of_tables(key: str) -> str:
    """The error for [[providers]], [[keys]] or [[limits]] written otherwise."""
    return f"{key} must be an array of tables, written [[{key}]]"


def _key(loc: tuple[int | str, ...]) -> str:
    """``("providers", 0, "base_url")`` as ``providers[0].base_url``; an item of a list of values is its list's key."""
    out = ""
    for part in loc[:-1] if loc and isinstance(loc[-1], int) else loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else part
    return out


def _hint_at(loc: tuple[int | str, ...]) -> Any:
    """The type that validates the value at ``loc``: a field of a section, an item of a tuple, a value of a table."""
    hint: Any = Config
    for part in loc:
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            fields = {alias: f for alias, f in zip(_file_keys(hint), hint.model_fields.values(), strict=True)}
            hint = fields[str(part)].annotation
        else:
            hint = typing.get_args(hint)[0 if isinstance(part, int) else -1]
    return hint


def _file_keys(model: type[BaseModel]) -> list[str]:
    """The keys a table of ``model`` may have: its fields' names, or their aliases in the file."""
    return [f.validation_alias if isinstance(f.validation_alias, str) else n for n, f in model.model_fields.items()]
