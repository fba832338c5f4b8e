"""Dollars at load time: a role's workspace spend limit, and the rule that a spend limit never counts a call as $0."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ._model import Role
from ._patterns import sdk_models
from ._prices import PriceTable
from ._spend import dollars_of

__all__ = ["unpriced_problems", "with_workspace_spend"]


def with_workspace_spend(role: Role, workspaces: Mapping[str, Any], default: str | None) -> Role:
    """The role with its workspace's spend limit (its own workspace, else the policy's default one)."""
    workspace = workspaces.get(role.workspace or default or "")
    if workspace is None or not workspace.spend:
        return role
    return dataclasses.replace(role, workspace_spend=workspace.spend)


def unpriced_problems(roles: Mapping[str, Role], prices: PriceTable) -> list[tuple[str, str]]:
    """``(message, role)`` per role that spends but may call an SDK model the price table has no price for."""
    problems = []
    for role in roles.values():
        if not role.allowed or not role.spends:
            continue
        unpriced = sorted(model for model in sdk_models() if role.matcher(model) and prices.price_for(model) is None)
        if unpriced:
            where = "its own" if role.spend else "its pool's" if role.pool_spend else "its workspace's"
            limit = role.spend or role.pool_spend or role.workspace_spend
            shown = ", ".join(f"${dollars_of(v)}/{p}" for p, v in (("day", limit.day), ("month", limit.month)) if v)
            message = (
                f"has a spend limit ({where}, {shown}) but may call {', '.join(unpriced[:5])}"
                f"{' and more' if len(unpriced) > 5 else ''}, which the price table has no price for: add"
                ' `[prices."<model>"]` to the policy or narrow `models` (a spend limit never counts a call as $0)'
            )
            problems.append((message, role.name))
    return problems
