"""The LDAP connection form of an LDAP app's Provisioning tab: its fields, their choices, and
the submitted form as the same connection spec the API builds (the service validates it).

Every profile field is sent, so a field emptied in the form is cleared; only a blank password
keeps the stored one (the service drops it when the URL changes). The password is never put
back into a page.
"""

from __future__ import annotations

from typing import Any

from headwater.domain.ldap import (
    LDAP_SCHEME,
    PROFILE_FIELDS,
    Deactivation,
    Directory,
    GroupClass,
    LdapProfile,
    OnMissingEntry,
)
from headwater.services.connections import ConnectionSpec
from headwater.web.core import Form

__all__ = ["CHOICES", "FIELDS", "form_values", "spec_from", "submitted_values"]

#: Text fields of the profile after the bind DN and password (secret key, label, hint).
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("people_base", "People base DN", "Where accounts are created."),
    ("groups_base", "Groups base DN", "Where pushed groups are created."),
    ("disabled_base", "Disabled base DN", "Where deactivated accounts go; needed for MOVE."),
    ("dn_template", "User DN template", "The new entry's RDN, e.g. uid=${userName}."),
    ("match_attribute", "Match attribute", "The attribute that finds an existing entry."),
)
#: Select fields: secret key to (label, choices as value and text).
CHOICES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "directory": (
        "Directory",
        (
            (Directory.OPENLDAP, "OpenLDAP (inetOrgPerson, entryUUID)"),
            (Directory.ACTIVE_DIRECTORY, "Active Directory (user, objectGUID)"),
        ),
    ),
    "deactivation": (
        "Deactivation",
        (
            (Deactivation.LOCK, "LOCK: lock the entry (pwdAccountLockedTime)"),
            (Deactivation.DISABLE, "DISABLE: Active Directory's account disabled bit"),
            (Deactivation.MOVE, "MOVE: move it under the disabled base DN"),
            (Deactivation.DELETE, "DELETE: delete it (reactivation creates it again)"),
        ),
    ),
    "group_class": (
        "Group object class",
        (
            (GroupClass.GROUP_OF_NAMES, "groupOfNames (member)"),
            (GroupClass.GROUP_OF_UNIQUE_NAMES, "groupOfUniqueNames (uniqueMember)"),
            (GroupClass.GROUP, "group (Active Directory)"),
        ),
    ),
    "on_missing": (
        "On missing entry",
        (
            (OnMissingEntry.RECREATE, "RECREATE: create it again where still wanted"),
            (OnMissingEntry.TASK, "TASK: stop and open a task"),
        ),
    ),
}
TIMEOUTS = (("connect_timeout", "Connect timeout (s)"), ("request_timeout", "Request timeout (s)"))
#: What a new connection's form starts with: the profile's own defaults.
_DEFAULTS = LdapProfile(bind_dn="", people_base="", groups_base="")


def form_values(base_url: str, stored: dict[str, str]) -> dict[str, Any]:
    """The form's values: the stored profile (never the password), else the defaults."""
    values: dict[str, Any] = {key: "" for key in PROFILE_FIELDS.values()}
    values.update(stored if stored else _DEFAULTS.to_secret())
    values["password"] = ""
    values["start_tls"] = values["start_tls"] == "true"
    values["base_url"] = base_url
    return values


def submitted_values(form: Form) -> dict[str, Any]:
    """The values as submitted (but the password), to show the form again after a test or
    an error."""
    values: dict[str, Any] = {key: form.get(key) for key in PROFILE_FIELDS.values()}
    values["password"] = ""
    values["start_tls"] = form.checked("start_tls")
    values["base_url"] = form.get("base_url")
    return values


def spec_from(form: Form) -> ConnectionSpec:
    """The connection as the API would receive it: every field, the password only if typed."""
    secret = {key: form.get(key) for key in PROFILE_FIELDS.values() if key != "password"}
    secret["start_tls"] = "true" if form.checked("start_tls") else "false"
    # A textarea's lines come back as CRLF; PEM is kept as typed otherwise.
    secret["ca_pem"] = secret["ca_pem"].replace("\r\n", "\n")
    if form.raw("password"):
        secret["password"] = form.raw("password")
    return ConnectionSpec(LDAP_SCHEME, form.get("base_url") or None, secret)
