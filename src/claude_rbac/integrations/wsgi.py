"""Any WSGI app: load the principal once per request, keep it in the environ, and deny by path early.

    app = RBACMiddleware(app, rbac=rbac, principal_loader=load_user, rules={"/admin/*": "admin"})

``principal_loader(environ)`` reads the app's own trusted identity (a server-side session, a verified
token) and returns a :class:`~claude_rbac.Principal` or ``None``; never a role a client sent. A request
that a rule admits can ask for its governed client with :func:`get_claude`.

The Flask extension builds on this module: the environ keys, :class:`PathRules`, :func:`admit` and
:func:`get_claude` are the same there, so the two compose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Final

from ..errors import NotAuthenticated, PolicyError, RBACError
from ..policy import Principal
from ..rbac import RBAC
from ._kernel import NOT_ADMITTED, Admission, Guard, PrincipalLoader, error_response, load_principal

if TYPE_CHECKING:
    import anthropic
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ADMISSION_KEY",
    "PRINCIPAL_KEY",
    "PathRules",
    "RBACMiddleware",
    "admit",
    "get_admission",
    "get_claude",
    "get_principal",
    "load_principal_or_none",
    "normalize_path",
    "routed_path",
]

PRINCIPAL_KEY: Final = "claude_rbac.principal"
"""The environ key of the request's :class:`~claude_rbac.Principal` (``None`` when nobody is signed in)."""
ADMISSION_KEY: Final = "claude_rbac.admission"
"""The environ key of the :class:`~claude_rbac.integrations.Admission` the request's guards left."""


def load_principal_or_none(loader: PrincipalLoader, *args: object) -> Principal | None:
    """The loader's principal. A loader that raises or returns a non-Principal counts as nobody signed in.

    :func:`~claude_rbac.guard.load_principal` has logged it at ERROR; every guard then answers 401.
    """
    try:
        return load_principal(loader, *args)
    except NotAuthenticated:
        return None


def get_principal(environ: WSGIEnvironment) -> Principal | None:
    value = environ.get(PRINCIPAL_KEY)
    return value if isinstance(value, Principal) else None


def admit(environ: WSGIEnvironment, rbac: RBAC, guard: Guard, principal: Principal | None, route: str) -> Admission:
    """Run ``guard`` (one ``claude_rbac.authorize`` span) and leave its admission; raises on a denial.

    A request several guards admit (a path rule, then a view's) is narrowed by each of them.
    """
    previous = environ.get(ADMISSION_KEY)
    admission = guard.admit(rbac, principal, route, previous if isinstance(previous, Admission) else None)
    environ[ADMISSION_KEY] = admission
    return admission


def get_admission(environ: WSGIEnvironment) -> Admission:
    """The admission the request's guards left; ``RuntimeError`` when no guard admitted it."""
    admission = environ.get(ADMISSION_KEY)
    if not isinstance(admission, Admission):
        raise RuntimeError(NOT_ADMITTED)
    return admission


def get_claude(environ: WSGIEnvironment) -> anthropic.Anthropic:
    """The governed client of this request, scoped by the guards it passed. Raises when no guard admitted it."""
    return get_admission(environ).client()


def normalize_path(path: str) -> str:
    """The path a router ends up serving: repeated slashes and ``.``/``..`` segments resolved, no trailing slash.

    Rules match this form, so ``//admin``, ``/x/../admin`` and ``/admin/.`` cannot slip past ``/admin/*``, and
    the path as sent, so ``/admin/..`` cannot either (werkzeug's router serves it as ``/admin/<path:p>``).
    """
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return "/" + "/".join(segments)


def routed_path(environ: WSGIEnvironment) -> str:
    """``PATH_INFO`` as the framework routes on it: the raw bytes decoded as UTF-8.

    PEP 3333 hands the path to the app as its raw bytes decoded as latin-1 (``/über`` arrives as
    ``/Ã¼ber``); werkzeug, and so Flask, decodes those bytes as UTF-8 (invalid bytes become U+FFFD) before
    routing. A server that already put decoded text there (not PEP 3333) is taken at its word.
    """
    raw = environ.get("PATH_INFO", "")
    try:
        return str(raw.encode("latin-1").decode("utf-8", "replace"))
    except UnicodeEncodeError:
        return str(raw)


def _compile(pattern: str) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise ValueError(f"a path rule must start with '/', got {pattern!r}")
    covers_prefix = pattern.endswith("/*")
    base = normalize_path(pattern[:-2] if covers_prefix else pattern)
    regex = ".*".join(re.escape(part) for part in base.split("*"))
    if covers_prefix:
        regex = regex.rstrip("/") + "(?:/.*)?"
    return re.compile(regex + r"\Z", re.DOTALL)


class PathRules:
    """``{"/admin/*": "admin"}``: every rule whose pattern matches the request path must pass.

    ``*`` matches any run of characters, slashes included, and ``/admin/*`` also covers ``/admin``.
    All matching rules apply (not the first one), so their order never opens a hole.
    """

    def __init__(self, rules: Mapping[str, str] | None = None) -> None:
        self._rules = tuple(
            (pattern, _compile(pattern), Guard.declare(role)) for pattern, role in (rules or {}).items()
        )

    def __bool__(self) -> bool:
        return bool(self._rules)

    @property
    def guards(self) -> Iterable[Guard]:
        return (guard for _, _, guard in self._rules)

    def validate(self, rbac: RBAC) -> None:
        """Raise :class:`~claude_rbac.PolicyError` at startup when a rule names a role the policy lacks."""
        for guard in self.guards:
            guard.validate(rbac)

    def matching(self, path: str, *other_forms: str) -> Iterator[tuple[str, Guard]]:
        """The rules any form of the path matches (an extra form can only add rules, never remove one)."""
        # Each form normalized and as sent: a router that resolves dot segments serves the normalized path,
        # and one that does not (werkzeug's, a prefix-routing WSGI app) the raw one, so "/admin/.." must not
        # slip past either.
        forms = {path, *other_forms}
        forms |= {normalize_path(form) for form in forms}
        for pattern, regex, guard in self._rules:
            if any(regex.match(form) for form in forms):
                yield pattern, guard


def _send_error(error: RBACError, start_response: StartResponse) -> list[bytes]:
    status, headers, body = error_response(error)
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]


class RBACMiddleware:
    """Loads the principal once per request into ``environ[PRINCIPAL_KEY]`` and enforces ``rules`` before the app.

    A denial never reaches the app: it gets the Anthropic-shaped JSON error (401 or 403) right here. An
    ``RBACError`` the app raises before it returns its body (a governed client's 403, 429 or 503) gets the same.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        rbac: RBAC,
        principal_loader: PrincipalLoader,
        rules: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.rbac = rbac
        self.principal_loader = principal_loader
        self.rules = PathRules(rules)
        self.rules.validate(rbac)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        principal = load_principal_or_none(self.principal_loader, environ)
        environ[PRINCIPAL_KEY] = principal
        try:
            # The decoded path the framework routes on, and (belt and braces) the raw one.
            for pattern, guard in self.rules.matching(routed_path(environ), environ.get("PATH_INFO", "")):
                admit(environ, self.rbac, guard, principal, pattern)
        except RBACError as error:
            return _send_error(error, start_response)
        try:
            return self.app(environ, start_response)
        except RBACError as error:
            # The governed client refused (403/429/503) before the app returned its body: answer with the
            # Anthropic error, as the ASGI middleware does, not the server's bare 500. A PolicyError is a
            # configuration error, and the server's 500.
            if isinstance(error, PolicyError):
                raise
            return _send_error(error, start_response)
