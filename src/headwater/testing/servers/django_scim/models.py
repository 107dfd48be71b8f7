"""The models django-scim2's stock adapters expect.

``SCIMUser`` reads and writes Django's usual user fields (``username``, ``first_name``,
``last_name``, ``email``, ``is_active``, ``date_joined``) plus the mixin's ``scim_*`` fields,
and lists a user's groups through ``scim_groups``; ``SCIMGroup`` reads a group's ``name`` and
its members through ``user_set``. ``auth.User`` and ``auth.Group`` lack the ``scim_*`` fields,
so the package's adapters need these two small subclasses.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django_scim.models import AbstractSCIMGroupMixin, AbstractSCIMUserMixin


class Group(AbstractSCIMGroupMixin):
    # Like auth.Group: a unique name of at most 150 characters.
    name: models.CharField[str, str] = models.CharField(max_length=150, unique=True)


class User(AbstractSCIMUserMixin, AbstractUser):
    scim_groups: models.ManyToManyField[Group, Any] = models.ManyToManyField(
        Group, related_name="user_set", blank=True
    )
