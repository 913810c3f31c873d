"""Settings for answer generation, shared by ``mograg ask`` and ``mograg serve``.

Values come from, highest precedence first: command-line flags, environment variables,
a TOML config file (``--config PATH``, else ``$MOGRAG_CONFIG``, else ``./mograg.toml``
if it exists), and built-in defaults. The file's ``[generator]`` table::

    [generator]
    kind = "openai"                      # openai | local | extractive
    base_url = "http://127.0.0.1:8080/v1"
    model = "smollm2"
    api_key_env = "MY_LLM_KEY"           # the name of the variable holding the key
    timeout = 60                         # seconds per request
    retries = 2                          # extra attempts on 429 / 5xx / connection errors
    model_path = "/models/model.gguf"    # local GGUF (kind = "local")
    context_tokens = 4096                # the model's context window
    max_tokens = 256                     # longest answer
    temperature = 0.0

Environment variables: ``MOGRAG_GENERATOR`` (kind), ``MOGRAG_LLM_BASE_URL``,
``MOGRAG_LLM_MODEL``, ``MOGRAG_LLM_TIMEOUT``, ``MOGRAG_LLM_RETRIES``, ``MOGRAG_GGUF``
(model_path), ``MOGRAG_LLM_CONTEXT_TOKENS``, ``MOGRAG_LLM_MAX_TOKENS``. The API key is never
read from the file: it comes from the variable named by ``api_key_env``, else
``MOGRAG_LLM_API_KEY``, else ``OPENAI_API_KEY``.

Other tables (e.g. ``[serve]``) are accepted and ignored.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mograg.errors import MogragError

DEFAULT_CONFIG_NAME = "mograg.toml"
KINDS = ("openai", "local", "extractive")

# key -> (type, environment variable)
_GENERATOR_KEYS: dict[str, tuple[type, str | None]] = {
    "kind": (str, "MOGRAG_GENERATOR"),
    "base_url": (str, "MOGRAG_LLM_BASE_URL"),
    "model": (str, "MOGRAG_LLM_MODEL"),
    "api_key_env": (str, None),
    "timeout": (float, "MOGRAG_LLM_TIMEOUT"),
    "retries": (int, "MOGRAG_LLM_RETRIES"),
    "model_path": (str, "MOGRAG_GGUF"),
    "context_tokens": (int, "MOGRAG_LLM_CONTEXT_TOKENS"),
    "max_tokens": (int, "MOGRAG_LLM_MAX_TOKENS"),
    "temperature": (float, None),
}


@dataclass
class GeneratorSettings:
    """Resolved generator settings; ``origin`` says where each non-default value came from."""

    kind: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    timeout: float = 60.0
    retries: int = 2
    model_path: str | None = None
    context_tokens: int | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    origin: dict[str, str] = field(default_factory=dict)

    @property
    def resolved_kind(self) -> str:
        """The kind to use: as set, else ``openai`` if a base URL is set, else ``extractive``."""
        if self.kind:
            return self.kind
        return "openai" if self.base_url else "extractive"

    def api_key(self, env: Mapping[str, str] | None = None) -> str | None:
        """The API key from the environment (never from the config file)."""
        env = os.environ if env is None else env
        names = [self.api_key_env] if self.api_key_env else []
        names += ["MOGRAG_LLM_API_KEY", "OPENAI_API_KEY"]
        for name in names:
            value = env.get(name)
            if value:
                return value
        return None

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (no key material)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "origin"}


@dataclass
class Config:
    """A loaded config file: its ``[generator]`` table, validated."""

    path: Path | None = None
    generator: dict[str, Any] = field(default_factory=dict)


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        try:
            import tomli as tomllib
        except ImportError:
            raise MogragError(
                f"{path}: reading TOML on Python 3.10 needs the 'tomli' package: pip install tomli"
            ) from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise MogragError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        msg = " ".join(str(exc).split())
        raise MogragError(f"{path}: invalid TOML ({msg})") from None


def _coerce(value: Any, typ: type, where: str) -> Any:
    """``value`` as ``typ`` or a one-line error naming ``where`` (file and key, or variable)."""
    if typ is str:
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise MogragError(f"{where} must be a non-empty string, got {value!r}")
    if isinstance(value, bool):
        raise MogragError(f"{where} must be a number, got {value!r}")
    try:
        if typ is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            out: Any = int(value)
        else:
            out = float(value)
    except (TypeError, ValueError):
        kind = "an integer" if typ is int else "a number"
        raise MogragError(f"{where} must be {kind}, got {value!r}") from None
    return out


def _check_value(key: str, value: Any, where: str) -> None:
    if key == "kind" and value not in KINDS:
        raise MogragError(f"{where} must be one of {', '.join(KINDS)}, got {value!r}")
    if key in ("timeout",) and value <= 0:
        raise MogragError(f"{where} must be positive, got {value!r}")
    if key in ("retries",) and value < 0:
        raise MogragError(f"{where} must be 0 or more, got {value!r}")
    if key in ("context_tokens", "max_tokens") and value < 16:
        raise MogragError(f"{where} must be at least 16 tokens, got {value!r}")
    if key == "temperature" and not 0 <= value <= 2:
        raise MogragError(f"{where} must be between 0 and 2, got {value!r}")
    if key == "base_url" and not value.startswith(("http://", "https://")):
        raise MogragError(f"{where} must be an http:// or https:// URL, got {value!r}")


def find_config(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                cwd: str | Path | None = None) -> Path | None:
    """The config file to read: ``path``, else ``$MOGRAG_CONFIG``, else ``./mograg.toml``."""
    env = os.environ if env is None else env
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise MogragError(f"{p}: no such config file; give a TOML file to --config")
        return p
    if env.get("MOGRAG_CONFIG"):
        p = Path(env["MOGRAG_CONFIG"])
        if not p.is_file():
            raise MogragError(f"{p}: no such config file (from MOGRAG_CONFIG)")
        return p
    p = Path(cwd or ".") / DEFAULT_CONFIG_NAME
    return p if p.is_file() else None


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                cwd: str | Path | None = None) -> Config:
    """Read and validate the config file (an empty :class:`Config` if there is none)."""
    p = find_config(path, env, cwd)
    if p is None:
        return Config()
    data = _load_toml(p)
    gen = data.get("generator", {})
    if not isinstance(gen, dict):
        raise MogragError(f"{p}: 'generator' must be a table ([generator])")
    checked: dict[str, Any] = {}
    for key, value in gen.items():
        where = f"{p}: generator.{key}"
        if key == "api_key":
            raise MogragError(
                f"{where}: do not put API keys in the config file; put the key in an "
                "environment variable and name it with api_key_env"
            )
        if key not in _GENERATOR_KEYS:
            raise MogragError(
                f"{where}: unknown key; known keys are {', '.join(_GENERATOR_KEYS)}"
            )
        typ, _ = _GENERATOR_KEYS[key]
        v = _coerce(value, typ, where)
        _check_value(key, v, where)
        checked[key] = v
    return Config(path=p, generator=checked)


def resolve_generator_settings(
    flags: Mapping[str, Any] | None = None,
    config: Config | str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> GeneratorSettings:
    """Merge flags > environment > config file > defaults into :class:`GeneratorSettings`.

    Args:
        flags: values given on the command line (``None`` values mean "not given"), with the
            keys of the ``[generator]`` table (``kind``, ``model``, ...).
        config: a loaded :class:`Config`, or a path to load (``None``: the default lookup).
        env: the environment (default ``os.environ``).

    Returns:
        The resolved settings; ``origin[key]`` is ``"flag"``, ``"env:NAME"`` or the file path.
    """
    env = os.environ if env is None else env
    cfg = config if isinstance(config, Config) else load_config(config, env)
    out = GeneratorSettings()
    for key, (typ, var) in _GENERATOR_KEYS.items():
        given = (flags or {}).get(key)
        if given is not None:
            where = f"--{key.replace('_', '-')}"
            value = _coerce(given, typ, where)
            _check_value(key, value, where)
            origin = "flag"
        elif var and env.get(var):
            where = f"environment variable {var}"
            value = _coerce(env[var], typ, where)
            _check_value(key, value, where)
            origin = f"env:{var}"
        elif key in cfg.generator:
            value, origin = cfg.generator[key], str(cfg.path)
        else:
            continue
        setattr(out, key, value)
        out.origin[key] = origin
    if flags:
        unknown = set(flags) - set(_GENERATOR_KEYS)
        if unknown:
            raise ValueError(f"unknown generator setting(s): {', '.join(sorted(unknown))}")
    return out
