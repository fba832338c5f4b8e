"""System checks: ``manage.py check`` (and the app's startup) name exactly what is misconfigured.

=================  ==========================================================================
claude_rbac.E001   ``settings.CLAUDE_RBAC`` is malformed (unknown key, wrong type, bad import path,
                   a storage URI whose scheme no ``limits`` storage has)
claude_rbac.E002   the policy does not load (the message names the file, role and field)
claude_rbac.E003   ``SUPERUSER_ROLE`` or a ``GROUP_ROLES`` value names a role the policy does not have
claude_rbac.E004   a ``requires_role``/``RoleRequiredMixin`` view names a role the policy lacks
claude_rbac.E005   ``RBACMiddleware`` comes before ``AuthenticationMiddleware``
claude_rbac.E006   ``RBACMiddleware`` is not in ``MIDDLEWARE``
claude_rbac.E007   the default principal loader reads ``request.user``, but ``AuthenticationMiddleware`` is missing
claude_rbac.E008   ``ROLE_ATTRIBUTE`` names an attribute the user model does not have
claude_rbac.W001   ``memory://`` storage in a multi-process deployment: every process counts alone
claude_rbac.W002   no Anthropic API key where the settings say it is
claude_rbac.W003   a deprecated setting name (``PRINCIPAL_RESOLVER``...): the message names the new one
claude_rbac.W004   ``ROLES_FROM_GROUPS`` (deprecated: a group's name granted the role of that name)
claude_rbac.W005   a group named like a policy role grants nothing (``--database``/``migrate`` only)
claude_rbac.W006   ``GROUP_ROLES`` names a group the database does not have (``--database``/``migrate`` only)
claude_rbac.W007   the default loader has no role source: every signed-in user has no role
claude_rbac.W008   Django's error reports would show ``settings.CLAUDE_RBAC``
claude_rbac.I001   which user attribute ``ROLE_ATTRIBUTE`` reads roles from (``check --deploy``)
=================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.core import checks  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.urls import URLPattern, URLResolver, get_resolver  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

from .._kernel import GUARD_ATTRIBUTE, Guard
from .config import SETTING
from .deploy_checks import check_api_key, check_error_reports, check_storage
from .guards import RoleRequiredMixin
from .role_checks import check_groups, check_role_attribute, check_role_sources
from .runtime import config_and_problems, on_reset

__all__ = ["TAG", "register", "validate_at_startup"]

TAG = "claude_rbac"
OUR_MIDDLEWARE = "claude_rbac.integrations.django.RBACMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    return list(config_and_problems()[1])


# -- middleware -----------------------------------------------------------------------------------


MIDDLEWARE_MARKER = "claude_rbac_middleware"
"""A class attribute ``RBACMiddleware`` (and any subclass) carries, so the checks find it without importing it."""


def _positions(matches: Any) -> list[int]:
    found = []
    for index, path in enumerate(settings.MIDDLEWARE):
        try:
            candidate = import_string(path)
        except ImportError:
            continue  # Django reports unimportable middleware itself
        if isinstance(candidate, type) and matches(candidate):
            found.append(index)
    return found


def _auth_positions() -> list[int]:
    try:
        from django.contrib.auth.middleware import AuthenticationMiddleware  # type: ignore[import-untyped]
    except Exception:  # the auth app is not installed: nothing can be an AuthenticationMiddleware
        return []
    return _positions(lambda candidate: issubclass(candidate, AuthenticationMiddleware))


def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    ours = _positions(lambda candidate: getattr(candidate, MIDDLEWARE_MARKER, False) is True)
    if not ours:
        return [
            checks.Error(
                f"{OUR_MIDDLEWARE} is not in MIDDLEWARE: no request gets a principal, and guarded views fail.",
                hint=f"Add {OUR_MIDDLEWARE!r} to MIDDLEWARE, after {AUTH_MIDDLEWARE!r}.",
                id="claude_rbac.E006",
            )
        ]
    auth = _auth_positions()
    if auth and ours[0] < auth[0]:
        return [
            checks.Error(
                f"{OUR_MIDDLEWARE} comes before {AUTH_MIDDLEWARE} in MIDDLEWARE, so request.user is not set yet.",
                hint=f"Move {OUR_MIDDLEWARE!r} after {AUTH_MIDDLEWARE!r}.",
                id="claude_rbac.E005",
            )
        ]
    config = config_and_problems()[0]
    if not auth and config is not None and config.loader is None:
        return [
            checks.Error(
                f"The default principal loader reads request.user, but {AUTH_MIDDLEWARE} is not in MIDDLEWARE.",
                hint=f"Add {AUTH_MIDDLEWARE!r} before {OUR_MIDDLEWARE!r}, or set {SETTING}['PRINCIPAL_LOADER'].",
                id="claude_rbac.E007",
            )
        ]
    return []


# -- guarded views --------------------------------------------------------------------------------


def _views(patterns: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def _guards(callback: Any) -> Iterator[tuple[str, Guard | None]]:
    guard = getattr(callback, GUARD_ATTRIBUTE, None)
    if isinstance(guard, Guard):
        yield f"{callback.__module__}.{callback.__qualname__}", guard
    view_class = getattr(callback, "view_class", None)
    if not isinstance(view_class, type):
        return
    label = f"{view_class.__module__}.{view_class.__qualname__}"
    if issubclass(view_class, RoleRequiredMixin):
        yield label, getattr(view_class, GUARD_ATTRIBUTE)
    for name in ("dispatch", *getattr(view_class, "http_method_names", ())):
        guard = getattr(getattr(view_class, name, None), GUARD_ATTRIBUTE, None)
        if isinstance(guard, Guard):
            yield f"{label}.{name}", guard


def check_views(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    config = config_and_problems()[0]
    if config is None:
        return []  # E001/E002 already say why
    try:
        patterns = get_resolver().url_patterns
    except Exception:
        return []  # Django's own URL checks report a URLconf that does not import
    roles = config.policy.roles
    problems = []
    for route, callback in _views(patterns):
        for label, guard in _guards(callback):
            if guard is None:
                message = f"URL {route!r} ({label}) uses RoleRequiredMixin without a required_role."
            elif guard.role not in roles:
                message = f"URL {route!r} ({label}) requires role {guard.role!r}, which the policy does not have."
            else:
                continue
            problems.append(
                checks.Error(message, hint=f"Roles in the policy: {', '.join(roles)}.", id="claude_rbac.E004")
            )
    return problems


ALL_CHECKS = (
    check_settings,
    check_middleware,
    check_views,
    check_role_sources,
    check_groups,
    check_storage,
    check_api_key,
    check_error_reports,
)


DEPLOY_CHECKS = (check_role_attribute,)
"""``manage.py check --deploy`` only: what a deployment review should see, too chatty for every ``runserver``."""


def register() -> None:
    for check in ALL_CHECKS:
        checks.register(check, TAG)
    for check in DEPLOY_CHECKS:
        checks.register(check, TAG, deploy=True)


# -- startup --------------------------------------------------------------------------------------

_validated = False


def _forget() -> None:
    global _validated
    _validated = False


on_reset(_forget)


def validate_at_startup() -> None:
    """Run the checks once per process (servers such as gunicorn never run ``manage.py check``).

    Errors raise ``ImproperlyConfigured`` (``SILENCED_SYSTEM_CHECKS`` applies). Warnings are for
    ``manage.py check``: W002 turns into an error when the RBAC is built, and the RBAC logs W001's
    multi-process warning itself.
    """
    global _validated
    if _validated:
        return
    silenced = set(getattr(settings, "SILENCED_SYSTEM_CHECKS", ()))
    errors = [m for check in ALL_CHECKS for m in check() if m.is_serious() and m.id not in silenced]
    if errors:
        raise ImproperlyConfigured("\n".join(_line(m) for m in errors))
    _validated = True


def _line(message: Any) -> str:
    hint = f" HINT: {message.hint}" if message.hint else ""
    return f"{message.id}: {message.msg}{hint}"
