from django.contrib.auth.models import AbstractUser
from django.db import models


class Member(AbstractUser):
    """A user model with a ``role`` field; left blank, the role comes from the user's groups."""

    role = models.CharField(max_length=32, blank=True, default="")
