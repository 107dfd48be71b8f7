"""An LDAP app's connection profile: where the directory is, how to bind, where entries go.

Pure: the profile is checked here (URL, DN syntax, bounds) and turned into the plain dict that
is sealed with the bind password, so the connector and the connection service read one shape.
An LDAP app is an app named :data:`LDAP_APP_NAME`; its connection's auth scheme is
:data:`LDAP_SCHEME`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from headwater.errors import InvalidRequest

__all__ = [
    "LDAP_APP_NAME",
    "LDAP_SCHEME",
    "LDAP_SECRET_FIELDS",
    "PROFILE_FIELDS",
    "Deactivation",
    "Directory",
    "GroupClass",
    "LdapProfile",
    "OnMissingEntry",
    "check_dn",
    "check_ldap_url",
    "parse_profile",
]

#: The app name (Okta's catalog key) that makes an app an LDAP directory.
LDAP_APP_NAME = "headwater_ldap"
#: The connection's auth scheme for LDAP apps: a simple bind with a DN and password.
LDAP_SCHEME = "LDAP"

MAX_DN = 1024
MAX_PEM = 65_536
MAX_TIMEOUT = 120.0

_ATTRIBUTE = r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+"
#: One RDN: attribute=value, the value's specials escaped (RFC 4514), ``+`` for multi-valued.
_VALUE = r"(?:#[0-9A-Fa-f]+|(?:[^,+\"\\<>;=]|\\[,+\"\\<>;=# ]|\\[0-9A-Fa-f]{2})+)"
_RDN = re.compile(rf"^\s*(?:{_ATTRIBUTE})\s*=\s*{_VALUE}\s*$")
_TEMPLATE_NAME = re.compile(r"\$\{([A-Za-z]+)\}")
#: The account attributes a DN template may name (``${userName}`` ...).
TEMPLATE_NAMES = frozenset(
    {"userName", "givenName", "familyName", "displayName", "email", "employeeNumber"}
)


class Directory(StrEnum):
    """The directory's dialect: how entries are classed, linked, disabled and grouped."""

    #: OpenLDAP and its kin: ``inetOrgPerson``, ``entryUUID``, ``groupOfNames``.
    OPENLDAP = "openldap"
    #: Active Directory (and Samba's AD DC): ``user``, ``objectGUID``, ``userAccountControl``,
    #: ``group`` with ``member`` read by range retrieval.
    ACTIVE_DIRECTORY = "activeDirectory"


class Deactivation(StrEnum):
    """What deactivating an account does to its entry (reactivation undoes it)."""

    #: Set ``pwdAccountLockedTime`` (the ppolicy overlay's permanent lock).
    LOCK = "LOCK"
    #: Set ``userAccountControl``'s ACCOUNTDISABLE bit (Active Directory only).
    DISABLE = "DISABLE"
    #: Move the entry under the disabled base DN.
    MOVE = "MOVE"
    #: Delete the entry (reactivation creates it again).
    DELETE = "DELETE"


class GroupClass(StrEnum):
    """The object class of pushed groups; each names its member attribute."""

    GROUP_OF_NAMES = "groupOfNames"
    GROUP_OF_UNIQUE_NAMES = "groupOfUniqueNames"
    #: Active Directory's groups (only there).
    GROUP = "group"

    @property
    def member_attribute(self) -> str:
        return "uniqueMember" if self is GroupClass.GROUP_OF_UNIQUE_NAMES else "member"


class OnMissingEntry(StrEnum):
    """What a change to an entry (or group) that is no longer in the directory does."""

    #: Forget the link; the next pass creates the entry again where it is still wanted.
    RECREATE = "RECREATE"
    #: Stop and open a Task for an administrator.
    TASK = "TASK"


#: The profile's API names and their keys in the sealed connection secret.
PROFILE_FIELDS: dict[str, str] = {
    "directory": "directory",
    "bindDn": "bind_dn",
    "password": "password",
    "startTls": "start_tls",
    "caCertificate": "ca_pem",
    "peopleBaseDn": "people_base",
    "groupsBaseDn": "groups_base",
    "disabledBaseDn": "disabled_base",
    "deactivation": "deactivation",
    "userDnTemplate": "dn_template",
    "matchAttribute": "match_attribute",
    "groupObjectClass": "group_class",
    "onMissingEntry": "on_missing",
    "connectTimeout": "connect_timeout",
    "requestTimeout": "request_timeout",
}


#: The secret's fields an LDAP connection needs, then those it may have.
LDAP_SECRET_FIELDS: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("bind_dn", "password", "people_base", "groups_base"),
    tuple(
        k
        for k in PROFILE_FIELDS.values()
        if k not in ("bind_dn", "password", "people_base", "groups_base")
    ),
)


def _invalid(cause: str) -> InvalidRequest:
    return InvalidRequest("Api validation failed: " + cause, [cause])


def _split_dn(value: str) -> list[str]:
    """RDNs of a DN, split at commas that are not escaped."""
    parts, current, escaped = [], "", False
    for char in value:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def check_dn(value: Any, name: str) -> str:
    """A distinguished name in RFC 4514 syntax (not empty), trimmed; 400 otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{name}: a distinguished name is required")
    text = value.strip()
    if len(text) > MAX_DN or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise _invalid(f"{name}: not a valid distinguished name")
    for rdn in _split_dn(text):
        if not all(_RDN.match(part) for part in rdn.split("+")):
            raise _invalid(f"{name}: not a valid distinguished name")
    return text


def check_ldap_url(value: Any, name: str = "baseUrl") -> str:
    """An ``ldap://`` or ``ldaps://`` URL naming a host (and port), nothing else."""
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{name}: required")
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise _invalid(f"{name}: not a valid URL") from None
    if parts.scheme.lower() not in ("ldap", "ldaps"):
        raise _invalid(f"{name}: must be an ldap:// or ldaps:// URL")
    if not parts.hostname:
        raise _invalid(f"{name}: must name a host")
    if parts.username or parts.password:
        raise _invalid(f"{name}: must not carry credentials")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise _invalid(f"{name}: must be scheme, host and port only")
    if port == 0:
        raise _invalid(f"{name}: not a valid port")
    return text.rstrip("/")


@dataclass(frozen=True)
class LdapProfile:
    """A checked LDAP connection profile (the password lives beside it, sealed)."""

    bind_dn: str
    people_base: str
    groups_base: str
    start_tls: bool = False
    ca_pem: str | None = field(default=None, repr=False)
    disabled_base: str | None = None
    deactivation: Deactivation = Deactivation.LOCK
    dn_template: str = "uid=${userName}"
    match_attribute: str = "uid"
    group_class: GroupClass = GroupClass.GROUP_OF_NAMES
    on_missing: OnMissingEntry = OnMissingEntry.RECREATE
    connect_timeout: float | None = None
    request_timeout: float | None = None
    directory: Directory = Directory.OPENLDAP

    @property
    def active_directory(self) -> bool:
        return self.directory is Directory.ACTIVE_DIRECTORY

    def to_secret(self) -> dict[str, str]:
        """The profile as the plain strings stored in the sealed connection secret."""
        values: dict[str, Any] = {
            "bind_dn": self.bind_dn,
            "people_base": self.people_base,
            "groups_base": self.groups_base,
            "start_tls": "true" if self.start_tls else "false",
            "ca_pem": self.ca_pem,
            "disabled_base": self.disabled_base,
            "deactivation": str(self.deactivation),
            "dn_template": self.dn_template,
            "match_attribute": self.match_attribute,
            "group_class": str(self.group_class),
            "on_missing": str(self.on_missing),
            "connect_timeout": self.connect_timeout,
            "request_timeout": self.request_timeout,
            "directory": str(self.directory),
        }
        return {k: str(v) for k, v in values.items() if v is not None}


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _invalid(f"{name}: must be true or false")


def _seconds(value: Any, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        raise _invalid(f"{name}: must be a number of seconds") from None
    if not 0.1 <= seconds <= MAX_TIMEOUT:
        raise _invalid(f"{name}: must be between 0.1 and {MAX_TIMEOUT:g} seconds")
    return seconds


def _template(value: Any, name: str) -> str:
    if not isinstance(value, str) or "=" not in value:
        raise _invalid(f"{name}: must be attribute=${{...}}, such as uid=${{userName}}")
    text = value.strip()
    if len(text) > 256 or "," in text or "+" in text:
        raise _invalid(f"{name}: one RDN only, at most 256 characters")
    attribute, _, rest = text.partition("=")
    if not re.fullmatch(_ATTRIBUTE, attribute.strip()):
        raise _invalid(f"{name}: {attribute.strip()!r} is not an attribute name")
    names = _TEMPLATE_NAME.findall(rest)
    unknown = sorted(set(names) - TEMPLATE_NAMES)
    if not names or unknown:
        raise _invalid(
            f"{name}: must use one or more of ${{{'}, ${'.join(sorted(TEMPLATE_NAMES))}}}"
        )
    return f"{attribute.strip()}={rest.strip()}"


def _directory(value: Any, name: str) -> Directory:
    if value is None or value == "":
        return Directory.OPENLDAP
    text = value.strip().casefold() if isinstance(value, str) and len(value) <= 64 else None
    for option in Directory:
        if text == option.value.casefold():
            return option
    raise _invalid(f"{name}: must be openldap or activeDirectory")


def _group_class(value: Any, name: str, directory: Directory) -> GroupClass:
    if directory is Directory.ACTIVE_DIRECTORY:
        if value is None or value == "" or (isinstance(value, str) and value.strip() == "group"):
            return GroupClass.GROUP
        raise _invalid(f"{name}: must be group (or left out) for Active Directory")
    if value is None or value == "":
        return GroupClass.GROUP_OF_NAMES
    text = value.strip().casefold() if isinstance(value, str) and len(value) <= 64 else None
    for option in (GroupClass.GROUP_OF_NAMES, GroupClass.GROUP_OF_UNIQUE_NAMES):
        if text == option.value.casefold():
            return option
    raise _invalid(f"{name}: must be groupOfNames or groupOfUniqueNames")


def _on_missing(value: Any, name: str) -> OnMissingEntry:
    if value is None or value == "":
        return OnMissingEntry.RECREATE
    text = value.strip().upper() if isinstance(value, str) and len(value) <= 64 else None
    for option in OnMissingEntry:
        if text == option.value:
            return option
    raise _invalid(f"{name}: must be RECREATE or TASK")


def parse_profile(values: Mapping[str, Any], *, prefix: str = "profile.") -> LdapProfile:
    """Check a profile given by secret key (``bind_dn``...); 400 naming the API field."""
    names = {key: f"{prefix}{api}" for api, key in PROFILE_FIELDS.items()}
    ca = values.get("ca_pem") or None
    if ca is not None and (
        not isinstance(ca, str) or len(ca) > MAX_PEM or "-----BEGIN CERTIFICATE-----" not in ca
    ):
        raise _invalid(f"{names['ca_pem']}: must be PEM certificates")
    directory = _directory(values.get("directory"), names["directory"])
    ad = directory is Directory.ACTIVE_DIRECTORY
    deactivation = values.get("deactivation") or (Deactivation.DISABLE if ad else Deactivation.LOCK)
    try:
        mode = Deactivation(str(deactivation).upper()[:16])
    except ValueError:
        mode = None
    if ad and mode not in (Deactivation.DISABLE, Deactivation.MOVE, Deactivation.DELETE):
        raise _invalid(f"{names['deactivation']}: must be DISABLE, MOVE or DELETE")
    if mode is None or (not ad and mode is Deactivation.DISABLE):
        raise _invalid(f"{names['deactivation']}: must be LOCK, MOVE or DELETE")
    disabled = values.get("disabled_base") or None
    if disabled is not None:
        disabled = check_dn(disabled, names["disabled_base"])
    if mode is Deactivation.MOVE and disabled is None:
        raise _invalid(f"{names['disabled_base']}: required when deactivation is MOVE")
    match = values.get("match_attribute") or ("sAMAccountName" if ad else "uid")
    if not isinstance(match, str) or not re.fullmatch(_ATTRIBUTE, match) or len(match) > 64:
        raise _invalid(f"{names['match_attribute']}: not an attribute name")
    template = _template(
        values.get("dn_template") or ("cn=${userName}" if ad else "uid=${userName}"),
        names["dn_template"],
    )
    if ad and template.partition("=")[0].casefold() != "cn":
        # AD names user entries by cn (the class's rDNAttID): another RDN is refused at add.
        raise _invalid(f"{names['dn_template']}: must be cn=${{...}} for Active Directory")
    return LdapProfile(
        directory=directory,
        group_class=_group_class(values.get("group_class"), names["group_class"], directory),
        on_missing=_on_missing(values.get("on_missing"), names["on_missing"]),
        bind_dn=check_dn(values.get("bind_dn"), names["bind_dn"]),
        people_base=check_dn(values.get("people_base"), names["people_base"]),
        groups_base=check_dn(values.get("groups_base"), names["groups_base"]),
        start_tls=_bool(values.get("start_tls", False), names["start_tls"]),
        ca_pem=ca,
        disabled_base=disabled,
        deactivation=mode,
        dn_template=template,
        match_attribute=match,
        connect_timeout=_seconds(values.get("connect_timeout"), names["connect_timeout"]),
        request_timeout=_seconds(values.get("request_timeout"), names["request_timeout"]),
    )
