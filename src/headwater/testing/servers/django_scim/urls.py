"""The URL configuration: django-scim2's views under ``/scim/v2/``, in its ``scim`` namespace."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("scim/v2/", include("django_scim.urls", namespace="scim")),
]
