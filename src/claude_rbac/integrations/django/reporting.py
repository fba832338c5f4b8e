"""Django's error reports (the ``DEBUG`` 500 page, the e-mails to ``ADMINS``) without ``settings.CLAUDE_RBAC``.

Django's filter hides the settings whose names match ``API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE``.
``CLAUDE_RBAC`` matches none, so the report shows the whole policy when ``POLICY`` is a dict, and a storage
URI with its password. Point Django at this filter:

    DEFAULT_EXCEPTION_REPORTER_FILTER = "claude_rbac.integrations.django.ExceptionReporterFilter"
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter  # type: ignore[import-untyped]

from .config import SETTING

__all__ = ["ExceptionReporterFilter", "hides_our_setting"]


class ExceptionReporterFilter(SafeExceptionReporterFilter):  # type: ignore[misc]
    """Django's ``SafeExceptionReporterFilter`` that also hides ``settings.CLAUDE_RBAC``."""

    hidden_settings = re.compile(f"{SafeExceptionReporterFilter.hidden_settings.pattern}|^{SETTING}$", flags=re.I)


def hides_our_setting(reporter_filter: object) -> bool:
    """Whether an exception reporter filter (an instance) leaves ``CLAUDE_RBAC`` out of its reports."""
    hidden = getattr(reporter_filter, "hidden_settings", None)
    return hidden is not None and hidden.search(SETTING) is not None
