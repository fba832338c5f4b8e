"""What changes between two policies, per role: what each gains and loses, and what comes through inheritance.

Roles are compared as compiled (inherited values included, models as the union over the ancestors), setting
by setting, generically: every compared field of :class:`~._model.Role` is a setting, so a setting added
later is diffed too. A list is a set (``models``, ``inherits``: items gained and lost); a number is a limit
(``None`` is unlimited: higher is a gain); ``allowed`` true is a gain; ``mode = "shadow"`` is a gain (nothing
is enforced); any other value just changes. ``mode`` and ``workspace`` are the role's effective ones (its
own, an ancestor's or the policy's). :func:`gain_hits` answers a CI gate's question: "does any role gain
opus?" (``--fail-on-gain models=claude-opus-*``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from ._model import Role, Settings
from ._policy import Policy
from ._revision import canonical

__all__ = ["Change", "PolicyDiff", "RoleDiff", "diff_policies", "gain_hits", "globs_overlap"]

Direction = Literal["gain", "loss", "change"]
_HIDDEN = frozenset({"name", "own_models", "inherits"})
_RENAMED = {
    "ancestors": "inherits",
    "pool_tpm": "pool.tpm",
    "pool_budget": "pool.budget",
    "pool_spend": "pool.spend",
    "workspace_spend": "workspace.spend",
}
_TRUE_IS_LOSS = frozenset({"strict"})
_MORE_IS_LOSS = frozenset({"revoked"})


@dataclass(frozen=True, slots=True)
class Change:
    setting: str
    before: Any
    after: Any
    direction: Direction
    gained: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()
    inherited_from: tuple[str, ...] = ()
    """For a change the role does not write itself: the roles it comes from (or ``policy``)."""


@dataclass(frozen=True, slots=True)
class RoleDiff:
    role: str
    status: Literal["added", "removed", "changed"]
    changes: tuple[Change, ...]
    allowed_before: bool = False
    allowed_after: bool = False
    lists_after: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """The role's list settings (``models``...) in the new policy: all of them are new to a role that just
    became allowed."""

    @property
    def inherited_only(self) -> bool:
        return self.status == "changed" and all(change.inherited_from for change in self.changes)


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    revision_before: str
    revision_after: str
    roles: tuple[RoleDiff, ...]
    settings: tuple[Change, ...]

    @property
    def changed(self) -> bool:
        return bool(self.roles or self.settings)


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, into)
    else:
        into[prefix] = value


def _view(role: Role, settings: Settings) -> dict[str, Any]:
    """A role's grants as flat settings (``budget.day``), each plain data."""
    view: dict[str, Any] = {}
    for name, value in canonical(role).items():
        if name not in _HIDDEN:
            _flatten(_RENAMED.get(name, name), value, view)
    view["mode"] = role.mode or settings.mode
    view["workspace"] = role.workspace or settings.default_workspace
    return view


@cache
def limit_settings(kind: type = Role, prefix: str = "") -> frozenset[str]:
    """The settings that are limits (an optional int: ``None`` is unlimited), found from the field types."""
    found: set[str] = set()
    for name, hint in typing.get_type_hints(kind).items():
        setting = f"{prefix}{_RENAMED.get(name, name)}"
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            found |= limit_settings(hint, f"{setting}.")
        elif int in typing.get_args(hint) and type(None) in typing.get_args(hint):
            found.add(setting)
    return frozenset(found)


def _baseline(view: Mapping[str, Any]) -> dict[str, Any]:
    """What a role that does not exist has: nothing (so everything an added role has is a gain)."""
    empty: dict[str, Any] = {}
    for name, value in view.items():
        if isinstance(value, list):
            empty[name] = []
        elif isinstance(value, bool):
            empty[name] = name in _TRUE_IS_LOSS
        elif name in limit_settings():
            empty[name] = 0
        else:
            empty[name] = None
    return empty


def _lists(view: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {name: tuple(str(item) for item in value) for name, value in view.items() if isinstance(value, list)}


def _compare(setting: str, before: Any, after: Any) -> Change | None:
    if before == after:
        return None
    leaf = setting.rsplit(".", 1)[-1]
    if isinstance(before, list) and isinstance(after, list):
        gained = tuple(str(item) for item in after if item not in before)
        lost = tuple(str(item) for item in before if item not in after)
        if leaf in _MORE_IS_LOSS:
            gained, lost = lost, gained
        if not gained and not lost:
            return None  # the same set in another order
        direction: Direction = "change" if gained and lost else "gain" if gained else "loss"
        return Change(setting, before, after, direction, gained, lost)
    if isinstance(before, bool) and isinstance(after, bool):
        return Change(setting, before, after, "gain" if after != (leaf in _TRUE_IS_LOSS) else "loss")
    numeric = (before is None or isinstance(before, int)) and (after is None or isinstance(after, int))
    if numeric:
        larger = after is None or (before is not None and after > before)
        return Change(setting, before, after, "gain" if larger else "loss")
    if leaf == "mode" and {before, after} == {"enforce", "shadow"}:
        return Change(setting, before, after, "gain" if after == "shadow" else "loss")
    if isinstance(before, list) != isinstance(after, list):  # None (any) against a list
        return Change(setting, before, after, "gain" if after is None else "loss" if before is None else "change")
    return Change(setting, before, after, "change")


def _compare_views(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    changes = []
    for setting in dict.fromkeys([*before, *after]):
        change = _compare(setting, before.get(setting), after.get(setting))
        if change is not None:
            changes.append(change)
    return changes


def _own(setting: str) -> str:
    head = setting.split(".", 1)[0]
    return "pool" if head.startswith("pool") else head


def _writes_itself(setting: str, old: Role, new: Role) -> bool:
    if setting == "models":
        return old.own_models != new.own_models
    if setting == "inherits":
        return old.inherits != new.inherits
    key = _own(setting)
    return key in old.own_keys or key in new.own_keys


def diff_policies(old: Policy, new: Policy) -> PolicyDiff:
    """Every role's gains and losses from ``old`` to ``new``, and the policy-wide settings that changed."""
    roles: list[RoleDiff] = []
    own_changes: dict[str, set[str]] = {}
    for name in dict.fromkeys([*old.roles, *new.roles]):
        before, after = old.roles.get(name), new.roles.get(name)
        if before is None or after is None:
            present = after if after is not None else before
            assert present is not None
            view = _view(present, (new if after is not None else old).settings)
            status: Literal["added", "removed"] = "added" if after is not None else "removed"
            views = (_baseline(view), view) if status == "added" else (view, _baseline(view))
            allowed = after is not None and after.allowed
            lists = _lists(view) if allowed else {}
            roles.append(RoleDiff(name, status, tuple(_compare_views(*views)), False, allowed, lists))
            continue
        new_view = _view(after, new.settings)
        changes = _compare_views(_view(before, old.settings), new_view)
        if not changes:
            continue
        own_changes[name] = {change.setting for change in changes if _writes_itself(change.setting, before, after)}
        roles.append(RoleDiff(name, "changed", tuple(changes), before.allowed, after.allowed, _lists(new_view)))
    roles = [_attribute(diff, old, new, own_changes) for diff in roles]
    old_settings = {"on_excess": old.on_excess, **_flat(old.settings)}
    new_settings = {"on_excess": new.on_excess, **_flat(new.settings)}
    return PolicyDiff(old.revision, new.revision, tuple(roles), tuple(_compare_views(old_settings, new_settings)))


def _flat(settings: Settings) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    _flatten("", canonical(settings), flat)
    return flat


def _attribute(diff: RoleDiff, old: Policy, new: Policy, own_changes: Mapping[str, set[str]]) -> RoleDiff:
    """Name where each change the role does not write itself comes from: the ancestors that changed it."""
    if diff.status != "changed":
        return diff
    own = own_changes.get(diff.role, set())
    ancestors = [*new.roles[diff.role].ancestors, *old.roles[diff.role].ancestors]
    changes = []
    for change in diff.changes:
        if change.setting in own:
            changes.append(change)
            continue
        sources = tuple(sorted({name for name in ancestors if change.setting in own_changes.get(name, set())}))
        changes.append(
            Change(
                change.setting,
                change.before,
                change.after,
                change.direction,
                change.gained,
                change.lost,
                sources or ("policy",),
            )
        )
    return RoleDiff(diff.role, diff.status, tuple(changes), diff.allowed_before, diff.allowed_after, diff.lists_after)


@cache
def globs_overlap(first: str, second: str) -> bool:
    """Whether some name matches both patterns (``*`` any run of characters, ``?`` one): ``claude-*`` and
    ``claude-opus-*`` overlap, ``claude-haiku-*`` and ``claude-opus-*`` do not."""

    @cache
    def meet(i: int, j: int) -> bool:
        if i == len(first) and j == len(second):
            return True
        if i < len(first) and first[i] == "*" and meet(i + 1, j):
            return True
        if j < len(second) and second[j] == "*" and meet(i, j + 1):
            return True
        if i == len(first) or j == len(second):
            return False
        a, b = first[i], second[j]
        if a == "*" and b == "*":
            return False  # both stars: only the empty moves above make progress
        if a == "*":
            return meet(i, j + 1)
        if b == "*":
            return meet(i + 1, j)
        return ("?" in (a, b) or a == b) and meet(i + 1, j + 1)

    return meet(0, 0)


def gain_hits(diff: PolicyDiff, kind: str, pattern: str | None = None) -> list[str]:
    """What a ``--fail-on-gain KIND[=PATTERN]`` gate fails on, one line per role and setting.

    ``KIND`` names a setting or a group of them (``budget`` is ``budget.day`` and ``budget.month``). With a
    ``PATTERN``, a list setting fails when it gains an item that may match it (a gained ``claude-*`` may admit
    ``claude-opus-4-7``, so it matches ``claude-opus-*``), and any other setting when its new value matches.
    A role that becomes ``allowed`` gains every model it has; an added role gains everything it has.
    """
    hits = []
    for role in diff.roles:
        newly_allowed = role.allowed_after and not role.allowed_before
        changes: dict[str, Change | None] = {change.setting: change for change in role.changes}
        if newly_allowed:
            changes.update({setting: changes.get(setting) for setting in role.lists_after})
        for setting, change in changes.items():
            if not (setting == kind or setting.startswith(f"{kind}.")):
                continue
            if newly_allowed and setting in role.lists_after:
                hits.extend(_list_hits(role.role, setting, role.lists_after[setting], pattern))
            elif change is None:
                continue
            elif isinstance(change.after, list) or isinstance(change.before, list):
                hits.extend(_list_hits(role.role, setting, change.gained, pattern))
            elif pattern is not None:
                if change.direction != "loss" and fnmatch.fnmatchcase(str(change.after), pattern):
                    hits.append(f"role {role.role}: {setting} becomes {change.after}")
            elif change.direction == "gain":
                hits.append(f"role {role.role} gains {setting}: {change.before} -> {change.after}")
    return hits


def _list_hits(role: str, setting: str, gained: tuple[str, ...], pattern: str | None) -> list[str]:
    matching = [item for item in gained if pattern is None or globs_overlap(item, pattern)]
    return [f"role {role} gains {setting} {', '.join(matching)}"] if matching else []
