"""Reading and validating the ``CLAUDE_RBAC`` setting.

Problems come back as Django check messages (``claude_rbac.E001``-``E003``), so ``manage.py check`` and
the app's startup report the same thing. Messages name keys and types, not values; anything in them that
looks like an API key (a key pasted as a setting's name, a resolver path, a role) shows as its fingerprint.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.core import checks  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

from ...errors import PolicyError
from ...policy import KEY_LITERAL, KeySource, Policy, hide_keys
from ...rbac import RBAC
from .._kernel import RateLimitStyle

__all__ = ["SETTING", "ApiKeySource", "Config", "describe", "read_api_key", "read_config"]

SETTING = "CLAUDE_RBAC"
KEYS = (
    "POLICY",
    "STORAGE",
    "STORAGE_OPTIONS",
    "KEY_PREFIX",
    "PRINCIPAL_LOADER",
    "PRINCIPAL_LOADER_TIMEOUT",
    "RATE_LIMIT_HEADERS",
    "GROUP_ROLES",
    "ROLE_ATTRIBUTE",
    "ROLES_FROM_GROUPS",
    "SUPERUSER_ROLE",
    "API_KEY",
    "BASE_URL",
    "OPTIONS",
)
DEPRECATED_KEYS = {"PRINCIPAL_RESOLVER": "PRINCIPAL_LOADER", "PRINCIPAL_RESOLVER_TIMEOUT": "PRINCIPAL_LOADER_TIMEOUT"}
"""Old spellings still read for one release (system check W003 names the new one)."""
_SET_HERE = frozenset({"policy", "storage", "storage_options", "key_prefix", "api_key", "base_url"})
OPTION_NAMES = frozenset(inspect.signature(RBAC).parameters) - _SET_HERE
"""What ``OPTIONS`` may hold: the other keyword arguments of :class:`~claude_rbac.RBAC`."""

ApiKeySource = KeySource | Callable[[], str]
Loader = Callable[[Any], Any]
DEFAULT_API_KEY = KeySource(env="ANTHROPIC_API_KEY")


@dataclass(frozen=True)
class Config:
    policy: Policy
    storage: str = "memory://"
    storage_options: Mapping[str, Any] | None = None
    key_prefix: str = "claude_rbac"
    loader: Loader | None = None
    """``None``: the built-in loader of ``request.user``."""
    loader_is_async: bool = False
    loader_timeout: float | None = 5.0
    """Seconds an async loader may take before the request counts as signed out (``None`` waits)."""
    rate_limit_headers: RateLimitStyle | None = None
    """``"ietf"`` (``RateLimit-*``) or ``"x"`` (``X-RateLimit-*``) on guarded views: one more storage read."""
    group_roles: Mapping[str, str] = field(default_factory=dict)
    """Django group name -> policy role; empty: no group grants anything."""
    role_attribute: str | None = None
    """The user attribute holding a policy role name; ``None``: no attribute is read."""
    superuser_role: str | None = None
    api_key: ApiKeySource = DEFAULT_API_KEY
    base_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def _error(message: str, hint: str | None = None, check_id: str = "claude_rbac.E001") -> Any:
    # A setting's key or value may be a pasted API key: a message shows it by its fingerprint only.
    return checks.Error(hide_keys(message), hint=hide_keys(hint) if hint else hint, id=check_id)


def _name(key: str) -> str:
    return f"settings.{SETTING}[{key!r}]"


def _policy(value: object, problems: list[Any]) -> Policy | None:
    try:
        if value is None:
            return Policy.default()
        if isinstance(value, Policy):
            return value
        if isinstance(value, Mapping):
            return Policy.from_dict(value, source=_name("POLICY"))
        if isinstance(value, (str, os.PathLike)):
            return Policy.from_file(value)
    except PolicyError as exc:
        for problem in exc.problems:
            problems.append(_error(f"The claude_rbac policy does not load: {problem}", check_id="claude_rbac.E002"))
        return None
    problems.append(_error(f"{_name('POLICY')} must be a file path or a dict, got {type(value).__name__}."))
    return None


def _callable(key: str, value: object, problems: list[Any]) -> Callable[..., Any] | None:
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            problems.append(_error(f"{_name(key)} cannot be imported: {exc}", "Give the dotted path of a function."))
            return None
    if not callable(value):
        problems.append(_error(f"{_name(key)} must be a dotted path to a function, got {type(value).__name__}."))
        return None
    return value


def _api_key(value: object, problems: list[Any]) -> ApiKeySource | None:
    if isinstance(value, str) and KEY_LITERAL.search(value):
        problems.append(
            _error(
                f"{_name('API_KEY')} looks like an API key; never put a key in settings.",
                'Use {"env": "ANTHROPIC_API_KEY"}, {"file": "/run/secrets/anthropic"} or a dotted path to a function.',
            )
        )
        return None
    if isinstance(value, Mapping):
        try:
            return KeySource.parse(value)
        except ValueError as exc:
            problems.append(_error(f'{_name("API_KEY")} must be {{"env": "NAME"}} or {{"file": "path"}} ({exc}).'))
            return None
    return _callable("API_KEY", value, problems)


def _check_type(raw: Mapping[str, Any], key: str, kinds: tuple[type, ...], wanted: str, problems: list[Any]) -> bool:
    value = raw.get(key)
    if value is None or isinstance(value, kinds):
        return True
    problems.append(_error(f"{_name(key)} must be {wanted}, got {type(value).__name__}."))
    return False


def _renamed(raw: Mapping[str, Any], problems: list[Any]) -> Mapping[str, Any]:
    """The setting with deprecated key names read as their new ones (and a W003 warning per old name)."""
    renamed = dict(raw)
    for old, new in DEPRECATED_KEYS.items():
        if old in renamed:
            problems.append(
                checks.Warning(
                    f"settings.{SETTING}[{old!r}] is deprecated; it is read as {new!r}.",
                    hint=f"Rename it to {new!r}.",
                    id="claude_rbac.W003",
                )
            )
            renamed.setdefault(new, renamed.pop(old))
    return renamed


def _check_storage(uri: str, problems: list[Any]) -> None:
    """The URI's scheme is one a ``limits`` storage registers; the message names the scheme, never the URI."""
    if "://" not in uri:
        problems.append(_error(f"{_name('STORAGE')} must be a limits storage URI (scheme://...)."))
        return
    scheme = uri.split("://", 1)[0].lower()
    known = storage_schemes()
    if scheme not in known:
        problems.append(
            _error(
                f"{_name('STORAGE')} has the unknown storage scheme {scheme!r}.",
                f"Use one of: {', '.join(sorted(name for name in known if not name.startswith('async+')))}.",
            )
        )


def storage_schemes() -> frozenset[str]:
    """Every scheme a ``limits`` storage class declares (``STORAGE_SCHEME``), sync and async, custom ones too."""
    import limits.aio.storage
    import limits.storage

    found: set[str] = set()
    pending: list[type] = [limits.storage.Storage, limits.aio.storage.Storage]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        found.update(getattr(cls, "STORAGE_SCHEME", None) or ())
    return frozenset(found)


def _role_attribute(value: object, problems: list[Any]) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isidentifier():
        return value
    problems.append(_error(f"{_name('ROLE_ATTRIBUTE')} must be the name of a user attribute, such as 'claude_role'."))
    return None


def _check_roles(policy: Policy, named: Mapping[str, str], problems: list[Any]) -> None:
    for where, role in named.items():
        if role not in policy.roles:
            problems.append(
                checks.Error(
                    f"{where} is {hide_keys(repr(role))}, a role the policy does not have.",
                    hint=f"Roles in the policy: {', '.join(policy.roles)}.",
                    id="claude_rbac.E003",
                )
            )


def _group_roles(raw: Mapping[str, Any], policy: Policy | None, problems: list[Any]) -> dict[str, str]:
    """``GROUP_ROLES``, or the deprecated ``ROLES_FROM_GROUPS`` read as "each group named like a role" (W004)."""
    mapping = raw.get("GROUP_ROLES")
    legacy = raw.get("ROLES_FROM_GROUPS")
    if isinstance(legacy, bool):
        problems.append(_legacy_groups_warning(legacy, mapping is not None))
    if mapping is None:
        return {role: role for role in policy.roles} if legacy is True and policy is not None else {}
    if not isinstance(mapping, Mapping):
        return {}  # _check_type reported it
    if not all(isinstance(group, str) and group and isinstance(role, str) for group, role in mapping.items()):
        problems.append(_error(f"{_name('GROUP_ROLES')} must map group names to role names (strings)."))
        return {}
    if policy is not None:
        _check_roles(policy, {f"{_name('GROUP_ROLES')}[{group!r}]": role for group, role in mapping.items()}, problems)
    return dict(mapping)


def _legacy_groups_warning(legacy: bool, has_mapping: bool) -> Any:
    if legacy and not has_mapping:
        message = (
            f"{_name('ROLES_FROM_GROUPS')} is deprecated: it gives each user the role named like one of their "
            "Django groups, so anyone who may create or rename a group (a staff user, a customer naming a team) "
            "can grant any role, admin included."
        )
    else:
        message = f"{_name('ROLES_FROM_GROUPS')} is deprecated and ignored: groups grant only what GROUP_ROLES maps."
    return checks.Warning(
        message,
        hint="Remove it and map the groups you trust explicitly: "
        "GROUP_ROLES = {'Support staff': 'user', 'Claude admins': 'admin'}.",
        id="claude_rbac.W004",
    )


def read_config(raw: object) -> tuple[Config | None, list[Any]]:
    """Validate the setting: the config when it is sound, and every problem found (check messages)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return None, [_error(f"settings.{SETTING} must be a dict, got {type(raw).__name__}.")]
    problems: list[Any] = []
    raw = _renamed(raw, problems)
    for key in raw:
        if key not in KEYS:
            problems.append(
                _error(f"settings.{SETTING} has an unknown key {key!r}.", f"Known keys: {', '.join(KEYS)}.")
            )
    policy = _policy(raw.get("POLICY"), problems)

    kinds_ok = [
        _check_type(raw, "STORAGE", (str,), 'a limits storage URI such as "redis://127.0.0.1:6379/0"', problems),
        _check_type(raw, "STORAGE_OPTIONS", (Mapping,), "a dict", problems),
        _check_type(raw, "KEY_PREFIX", (str,), "a string", problems),
        _check_type(raw, "ROLES_FROM_GROUPS", (bool,), "True or False", problems),
        _check_type(raw, "GROUP_ROLES", (Mapping,), "a dict of Django group name -> policy role", problems),
        _check_type(raw, "SUPERUSER_ROLE", (str,), "a role name", problems),
        _check_type(raw, "BASE_URL", (str,), "an http(s) URL", problems),
        _check_type(raw, "OPTIONS", (Mapping,), "a dict of RBAC() keyword arguments", problems),
        _check_type(raw, "PRINCIPAL_LOADER_TIMEOUT", (int, float), "a number of seconds", problems),
    ]
    rate_headers: Any = raw.get("RATE_LIMIT_HEADERS")
    if rate_headers not in (None, "ietf", "x"):
        problems.append(_error(f"{_name('RATE_LIMIT_HEADERS')} must be 'ietf', 'x' or None."))
    storage = raw.get("STORAGE") or "memory://"
    if isinstance(storage, str):
        _check_storage(storage, problems)
    raw_options = raw.get("OPTIONS")
    options = dict(raw_options) if isinstance(raw_options, Mapping) else {}  # not a dict: reported above
    for name in options:
        if name not in OPTION_NAMES:
            problems.append(
                _error(
                    f"{_name('OPTIONS')} has {name!r}, which RBAC() does not take here.",
                    f"OPTIONS may hold: {', '.join(sorted(OPTION_NAMES))}.",
                )
            )
    loader = raw.get("PRINCIPAL_LOADER")
    if loader is not None:
        loader = _callable("PRINCIPAL_LOADER", loader, problems)
    api_key = _api_key(raw.get("API_KEY", {"env": "ANTHROPIC_API_KEY"}), problems)

    role_attribute = _role_attribute(raw.get("ROLE_ATTRIBUTE"), problems)
    superuser_role = raw.get("SUPERUSER_ROLE")
    group_roles = _group_roles(raw, policy, problems)
    if policy is not None and isinstance(superuser_role, str):
        _check_roles(policy, {_name("SUPERUSER_ROLE"): superuser_role}, problems)
    if any(problem.is_serious() for problem in problems) or policy is None or api_key is None or not all(kinds_ok):
        return None, problems
    return (
        Config(
            policy=policy,
            storage=storage,
            storage_options=raw.get("STORAGE_OPTIONS"),
            key_prefix=raw.get("KEY_PREFIX") or "claude_rbac",
            loader=loader,
            loader_is_async=loader is not None and iscoroutinefunction(loader),
            loader_timeout=raw.get("PRINCIPAL_LOADER_TIMEOUT", 5.0),
            rate_limit_headers=rate_headers,
            group_roles=group_roles,
            role_attribute=role_attribute,
            superuser_role=superuser_role,
            api_key=api_key,
            base_url=raw.get("BASE_URL"),
            options=options,
        ),
        problems,
    )


def read_api_key(source: ApiKeySource) -> str | None:
    if isinstance(source, KeySource):
        return source.read()[0]
    value = source()
    return value if isinstance(value, str) and value else None


def describe(source: ApiKeySource) -> str:
    if isinstance(source, KeySource):
        return f"the environment variable {source.env}" if source.env else f"the file {source.file}"
    return f"{getattr(source, '__module__', '?')}.{getattr(source, '__qualname__', repr(source))}()"
