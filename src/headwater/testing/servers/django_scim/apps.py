"""The Django application holding the SCIM user and group models."""

from __future__ import annotations

from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    # The label must differ from django-scim2's own app ("django_scim"), which this
    # package's last name would otherwise give it.
    name = "headwater.testing.servers.django_scim"
    label = "directory"
    default_auto_field = "django.db.models.BigAutoField"
