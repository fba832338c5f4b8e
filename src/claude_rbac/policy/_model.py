"""The policy's vocabulary: who asks (:class:`Principal`), what a role grants (:class:`Role`), the policy-wide
settings and the answer to one question (:class:`Decision`). How a route narrows a role is ``_scope.py``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ._grants import DEFAULT_GRANTS, GRANT_KEYS, GrantMatchers
from ._patterns import ModelMatcher
from ._prices import PriceTable
from ._spend import NO_SPEND, Spend
from ._workspaces import Workspace

__all__ = [
    "BatchAccess",
    "Budget",
    "Decision",
    "FieldValues",
    "Mode",
    "OnExcess",
    "Principal",
    "Role",
    "Settings",
    "as_patterns",
    "min_cap",
]

Mode = Literal["enforce", "shadow"]
OnExcess = Literal["clamp", "reject"]
BatchAccess = Literal["own", "all"]
"""Which batches a role may retrieve, read the results of and cancel: those its principal created, or all."""
FieldValues = tuple[tuple[str, tuple[str, ...]], ...]
"""Request-field values by name, in order: ``(("tools", ("custom", "web_search_20250305")), ("speed", ("fast",)))``."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user as the app's own identity layer knows them. Never built from client input."""

    id: str
    role: str | None

    def __repr__(self) -> str:
        return f"Principal(id={self.id!r}, role={self.role!r})"


@dataclass(frozen=True, slots=True)
class Budget:
    """Tokens per day and/or per month."""

    day: int | None = None
    month: int | None = None

    def __bool__(self) -> bool:
        return self.day is not None or self.month is not None


@dataclass(frozen=True, slots=True)
class Role:
    """A compiled role: its own settings merged with what it inherits.

    ``models`` is the union of the role's patterns and its ancestors'; every other setting is the
    role's own value or, when it has none, the nearest ancestor's (parents in the order listed).
    ``own_models`` are the patterns the role itself lists (``claude-rbac explain`` names the rule).
    """

    name: str
    allowed: bool
    models: tuple[str, ...]
    max_tokens: int | None
    rpm: int | None
    inherits: tuple[str, ...] = ()
    ancestors: frozenset[str] = frozenset()
    description: str = ""
    tpm: int | None = None
    budget: Budget = Budget()
    pool_tpm: int | None = None
    pool_budget: Budget = Budget()
    spend: Spend = NO_SPEND
    """US dollars per principal per UTC day/month, in micro-dollars."""
    pool_spend: Spend = NO_SPEND
    """US dollars the role's principals share per UTC day/month, in micro-dollars."""
    workspace_spend: Spend = NO_SPEND
    """The spend limit of the role's workspace (its own or the default), shared by every role there."""
    workspace: str | None = None
    mode: Mode | None = None
    batches: BatchAccess = "own"
    tools: tuple[str, ...] = DEFAULT_GRANTS["tools"]
    mcp_servers: tuple[str, ...] = ()
    service_tiers: tuple[str, ...] = DEFAULT_GRANTS["service_tiers"]
    speeds: tuple[str, ...] = DEFAULT_GRANTS["speeds"]
    inference_geos: tuple[str, ...] = ()
    betas: tuple[str, ...] = ()
    strict: bool = False
    """Refuse a request with a field claude_rbac does not govern (``field_not_allowed``); else record it."""
    own_models: tuple[str, ...] = ()
    own_keys: frozenset[str] = field(default=frozenset(), compare=False)
    """The settings the role writes itself (the others are inherited or defaults): ``claude-rbac diff`` says
    which changes come through inheritance."""
    matcher: ModelMatcher = field(default_factory=lambda: ModelMatcher(()), repr=False, compare=False)
    grants: GrantMatchers = field(init=False, repr=False, compare=False)
    """The request-field grants (:data:`~._grants.GRANT_KEYS`), compiled."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "grants", GrantMatchers((key, getattr(self, key)) for key in GRANT_KEYS))

    def allows_model(self, model: str) -> bool:
        return self.matcher(model)

    @property
    def counts_tokens(self) -> bool:
        """Whether a call must reserve tokens: the role has a TPM limit, a budget or a pool."""
        return bool(self.tpm or self.budget or self.pool_tpm or self.pool_budget or self.spends)

    @property
    def spends(self) -> bool:
        """Whether a call must reserve dollars: the role, its pool or its workspace has a spend limit."""
        return bool(self.spend or self.pool_spend or self.workspace_spend)

    def includes(self, required: str) -> bool:
        """Whether this role is ``required`` or inherits from it (``power`` includes ``user``)."""
        return self.name == required or required in self.ancestors


def as_patterns(models: Iterable[str] | str | None) -> tuple[str, ...] | None:
    """A route's ``models=`` argument (one pattern, several, or ``None`` for no narrowing) as a tuple."""
    if models is None:
        return None
    return (models,) if isinstance(models, str) else tuple(models)


def min_cap(a: int | None, b: int | None) -> int | None:
    """The tighter of two optional caps."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


@dataclass(frozen=True, slots=True)
class Settings:
    """The policy-wide settings beyond its roles."""

    mode: Mode = "enforce"
    workspaces: Mapping[str, Workspace] = field(default_factory=lambda: MappingProxyType({}))
    default_workspace: str | None = None
    allowed_org_ids: str | None = None
    """The ``anthropic-allowed-org-ids`` value every request carries (canonical, comma-separated)."""
    revoked: tuple[str, ...] = ()
    """Fingerprints of revoked keys."""
    strict: bool = False
    """The top-level ``strict``: the default of every role that does not set its own."""
    prices: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The policy's ``[prices."pattern"]`` changes to the shipped table, as written."""
    price_table: PriceTable | None = field(default=None, compare=False)
    """The prices in force: the shipped table with :attr:`prices` applied (``None``: the shipped one)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one policy decision. Truthy when allowed."""

    allowed: bool
    reason: str
    """``allowed``, ``clamped``, or the ``error_code`` of the denial."""
    role: str | None = None
    model: str | None = None
    max_tokens_requested: int | None = None
    max_tokens_effective: int | None = None
    message: str = ""
    fields: FieldValues = ()
    """The governed request-field values the request asked for (and ``unknown_fields``): the audit trail's."""

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def clamped(self) -> bool:
        return self.reason == "clamped"

    def with_fields(self, fields: FieldValues) -> Decision:
        """This decision carrying ``fields`` (the request-field values it judged)."""
        return Decision(
            self.allowed,
            self.reason,
            self.role,
            self.model,
            self.max_tokens_requested,
            self.max_tokens_effective,
            self.message,
            fields,
        )

    def denied(self, reason: str, message: str) -> Decision:
        """This decision turned into a denial for ``reason`` (a rate limit, a revoked key...), keeping its facts."""
        return Decision(
            False,
            reason,
            self.role,
            self.model,
            self.max_tokens_requested,
            self.max_tokens_effective,
            message,
            self.fields,
        )
