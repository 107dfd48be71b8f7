"""Django settings for the SCIM test project.

``python -m headwater.testing.servers.django_scim`` sets ``DJANGO_SCIM_DATA_DIR`` (where the
SQLite file goes) and ``DJANGO_SCIM_BEARER_TOKENS`` (accepted tokens, one per line) before
Django reads this module.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

DATA_DIR = Path(os.environ.get("DJANGO_SCIM_DATA_DIR") or tempfile.gettempdir())
SCIM_BEARER_TOKENS = [t for t in os.environ.get("DJANGO_SCIM_BEARER_TOKENS", "").splitlines() if t]

DEBUG = False
SECRET_KEY = secrets.token_urlsafe(32)
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True
ROOT_URLCONF = "headwater.testing.servers.django_scim.urls"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_scim",
    "headwater.testing.servers.django_scim.apps.DirectoryConfig",
]
AUTH_USER_MODEL = "directory.User"
# Every table is made from the models at startup (``migrate --run-syncdb``): the database
# is new each time, so there is nothing to migrate.
MIGRATION_MODULES = {"auth": None, "contenttypes": None, "directory": None}
MIDDLEWARE = ["headwater.testing.servers.django_scim.auth.BearerTokenMiddleware"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DATA_DIR / "scim.sqlite3"),
    }
}

SCIM_SERVICE_PROVIDER = {
    "NETLOC": "127.0.0.1",
    "SCHEME": "http",
    "AUTHENTICATION_SCHEMES": [
        {
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token given at startup",
            "primary": True,
        }
    ],
    "WWW_AUTHENTICATE_HEADER": 'Bearer realm="django-scim2"',
    "GROUP_MODEL": "headwater.testing.servers.django_scim.models.Group",
    "BASE_LOCATION_GETTER": "headwater.testing.servers.django_scim.auth.base_location",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
