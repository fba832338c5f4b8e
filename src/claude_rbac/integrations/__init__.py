"""Framework adapters (wsgi, flask, asgi, starlette, fastapi, django) over one shared kernel.

The kernel's names are importable from here for code that writes its own adapter: the route guard
declaration (:class:`Guard`), the fail-closed principal loaders and the Anthropic-shaped error response.
"""

from ._kernel import (
    GUARD_ATTRIBUTE,
    Admission,
    AsyncPrincipalLoader,
    Guard,
    PrincipalLoader,
    aload_principal,
    error_response,
    load_principal,
)

__all__ = [
    "GUARD_ATTRIBUTE",
    "Admission",
    "AsyncPrincipalLoader",
    "Guard",
    "PrincipalLoader",
    "aload_principal",
    "error_response",
    "load_principal",
]
