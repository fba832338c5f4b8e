"""Reading a policy file (TOML, JSON or YAML) into a plain mapping, with errors that name the file."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import PolicyError, PolicyProblem
from ._workspaces import redact

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["read_policy_file"]


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object hook that refuses a key given twice (``json`` would silently keep the last one)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(f"the key {redact(key)} is given twice in one object")
        seen[key] = value
    return seen


def _load_yaml(content: bytes, source: str) -> object:
    try:
        import yaml
    except ImportError:
        raise PolicyError(
            [PolicyProblem("YAML policies need PyYAML: pip install 'claude-rbac[yaml]'", source)]
        ) from None
    try:
        return yaml.safe_load(content)
    except yaml.YAMLError as exc:
        # The problem mark says where; the snippet it quotes could hold a pasted key, so it is not shown.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise PolicyError([PolicyProblem(f"cannot parse the policy file{where}: {problem}", source)]) from None


def read_policy_file(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Parse a policy file by its suffix. Any failure is a :class:`PolicyError` naming the file."""
    source = os.fspath(path)
    suffix = os.path.splitext(source)[1].lower()
    if suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise PolicyError(
            [PolicyProblem(f"unknown policy file type {suffix!r}: use .toml, .json, .yaml or .yml", source)]
        )
    try:
        with open(source, "rb") as fh:
            content = fh.read()
    except OSError as exc:
        raise PolicyError([PolicyProblem(f"cannot read the policy file: {exc.strerror}", source)]) from None
    data: object
    try:
        if suffix == ".toml":
            data = tomllib.loads(content.decode("utf-8"), parse_float=Decimal)  # dollars, exactly as written
        elif suffix == ".json":
            data = json.loads(content, object_pairs_hook=_no_duplicates, parse_float=Decimal)
        else:
            data = _load_yaml(content, source)
    except PolicyError:
        raise
    except _DuplicateKey as exc:
        raise PolicyError([PolicyProblem(str(exc), source)]) from None
    except UnicodeDecodeError:
        raise PolicyError([PolicyProblem("cannot parse the policy file: it is not UTF-8", source)]) from None
    except ValueError as exc:
        raise PolicyError([PolicyProblem(f"cannot parse the policy file: {_parse_error(exc)}", source)]) from None
    if not isinstance(data, Mapping):
        raise PolicyError([PolicyProblem("a policy must be a table/mapping at the top level", source)])
    return data


def _parse_error(exc: ValueError) -> str:
    """A parser's message without the text it quotes (which could be a pasted key)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    return redact(str(exc)).strip("'\"")
