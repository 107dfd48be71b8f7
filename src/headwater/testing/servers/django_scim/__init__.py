"""A minimal Django project serving django-scim2's stock SCIM views, for tests.

django-scim2 is a SCIM 2.0 service-provider library for Django; this project is the least
an application needs to serve it: a user and a group model with the package's SCIM mixins
(its stock adapters, ``SCIMUser`` and ``SCIMGroup``, read and write exactly those fields),
the package's URLs under ``/scim/v2/``, SQLite in a temporary folder, and a bearer-token
check in front (django-scim2 leaves authentication to the application).

Run it with ``python -m headwater.testing.servers.django_scim --port P --bearer-token=T``;
tests use :class:`headwater.testing.servers.DjangoScimProcess`. Nothing here is imported by
Headwater itself: importing :mod:`.models` needs a configured Django.
"""
