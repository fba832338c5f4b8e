from django.contrib.auth.models import AbstractUser
from django.db import models


class Member(AbstractUser):
    """A user model with a Claude role field (``ROLE_ATTRIBUTE``) and a ``role`` field of the app's own.

    ``role`` means something else in the app (``"admin"`` of an organisation, say): it must grant nothing.
    """

    claude_role = models.CharField(max_length=32, blank=True, default="")
    role = models.CharField(max_length=32, blank=True, default="")
