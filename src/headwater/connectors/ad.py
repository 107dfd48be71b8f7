"""Active Directory's dialect of LDAP, for the LDAP connector: ``user`` entries named by
``sAMAccountName`` and ``userPrincipalName``, linked by ``objectGUID``, disabled by
``userAccountControl``'s ACCOUNTDISABLE bit, and ``group`` members read by range retrieval.

Pure helpers; the connector decides when they apply (the profile's ``directory``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from ldap3.utils.conv import escape_bytes

from headwater.connectors.errors import PermanentError
from headwater.domain.downstream import AccountAttributes

__all__ = [
    "ACCOUNTDISABLE",
    "AD_CAPABILITY",
    "MEMBER_RANGE",
    "USER_CLASSES",
    "ad_attributes",
    "group_account_name",
    "guid_filter",
    "guid_text",
    "member_range",
    "sam_account_name",
    "with_disabled",
]

#: The root DSE capability Active Directory (and Samba's AD DC) announces.
AD_CAPABILITY = "1.2.840.113556.1.4.800"
USER_CLASSES = ("top", "person", "organizationalPerson", "user")
#: ``userAccountControl``'s "account disabled" bit.
ACCOUNTDISABLE = 0x2
#: Values of ``member`` asked for per request: AD's default MaxValRange.
MEMBER_RANGE = 1500
#: The pre-Windows 2000 logon name's limit and the characters it may not hold.
SAM_MAX = 20
_SAM_FORBIDDEN = re.compile(r'["/\\\[\]:;|=,+*?<>@]')
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
#: Never written from ``extra``: structure, credentials, and what the directory owns.
_RESERVED = frozenset(
    {
        "objectclass",
        "objectguid",
        "objectsid",
        "unicodepwd",
        "userpassword",
        "useraccountcontrol",
        "memberof",
        "primarygroupid",
        "samaccounttype",
        "pwdlastset",
        "cn",
        "name",
        "distinguishedname",
    }
)
_RANGE = re.compile(r";range=(\d+)-(\d+|\*)$", re.IGNORECASE)


def guid_text(raw: bytes) -> str:
    """The canonical text of a binary ``objectGUID`` (its first three fields little-endian)."""
    return str(uuid.UUID(bytes_le=raw))


def guid_filter(value: str) -> str:
    """An ``objectGUID`` equality filter for the canonical text, as escaped bytes."""
    return f"(objectGUID={escape_bytes(uuid.UUID(value).bytes_le)})"


def _valid_sam(value: str) -> bool:
    return (
        0 < len(value) <= SAM_MAX
        and not _SAM_FORBIDDEN.search(value)
        and not value.endswith(".")
        and all(ord(c) >= 0x20 for c in value)
    )


def sam_account_name(attrs: AccountAttributes | None, user_name: str) -> str:
    """The account's ``sAMAccountName``: the mapped one, else userName's local part; a value
    AD cannot take (over 20 characters, or one of ``"/\\[]:;|=,+*?<>@``) is a permanent
    error the engine turns into a Task."""
    mapped = None
    if attrs is not None:
        mapped = next(
            (v for k, v in attrs.extra.items() if k.casefold() == "samaccountname" and v), None
        )
    value = str(mapped) if mapped is not None else user_name.partition("@")[0]
    if not _valid_sam(value):
        source = "the mapped sAMAccountName" if mapped is not None else "userName's local part"
        raise PermanentError(
            f"Active Directory: sAMAccountName {value[:64]!r} ({source}) is not a valid "
            f'logon name: at most {SAM_MAX} characters, none of "/\\[]:;|=,+*?<>@; map a '
            "sAMAccountName in the app's profile",
            status=400,
        )
    return value


def derived_sam(user_name: str) -> str | None:
    """userName's local part when it can be a ``sAMAccountName`` (for look-ups)."""
    value = user_name.partition("@")[0]
    return value if _valid_sam(value) else None


def group_account_name(display_name: str) -> str:
    """A group's ``sAMAccountName`` from its name: forbidden characters as ``_``, at most 64
    characters (AD's limit for groups is 256; shorter names stay readable in old tools)."""
    cleaned = _SAM_FORBIDDEN.sub("_", display_name).strip().rstrip(".")
    cleaned = "".join(c for c in cleaned if ord(c) >= 0x20)
    return cleaned[:64] or "group"


def ad_attributes(attrs: AccountAttributes) -> dict[str, list[str] | None]:
    """The ``user`` entry's managed attributes (None: must be absent). ``cn`` is the RDN and
    changes only by a rename; ``userPrincipalName`` is the userName when it has an ``@``."""
    values: dict[str, str | None] = {
        "sAMAccountName": sam_account_name(attrs, attrs.user_name),
        "userPrincipalName": attrs.user_name if "@" in attrs.user_name else None,
        "sn": attrs.family_name,
        "givenName": attrs.given_name,
        "displayName": attrs.display_name,
        "mail": attrs.email,
        "title": attrs.title,
        "department": attrs.department,
        "employeeNumber": attrs.employee_number,
    }
    result: dict[str, list[str] | None] = {
        k: ([v] if v not in (None, "") else None) for k, v in values.items()
    }
    for key, value in attrs.extra.items():
        folded = key.casefold()
        if not _ATTRIBUTE.match(key) or folded in _RESERVED or folded == "samaccountname":
            continue
        listed = [str(v) for v in value] if isinstance(value, list | tuple) else [value]
        kept = [str(v) for v in listed if v is not None and not isinstance(v, dict)]
        name = next((k for k in result if k.casefold() == folded), key)
        result[name] = kept or None
    return result


def with_disabled(uac: int, disabled: bool) -> int:
    """``userAccountControl`` with ACCOUNTDISABLE set or cleared, every other bit kept."""
    return uac | ACCOUNTDISABLE if disabled else uac & ~ACCOUNTDISABLE


def member_range(raw: Mapping[str, Any], attribute: str) -> tuple[list[bytes], int | None]:
    """The values of one range-retrieval answer and where the next range starts (None when
    this was the last). An answer without the ranged attribute holds no more values."""
    for key, values in raw.items():
        name, _, _ = key.partition(";")
        if name.casefold() != attribute.casefold():
            continue
        found = _RANGE.search(key)
        listed = list(values or [])
        if found is None:
            return listed, None
        end = found.group(2)
        return listed, None if end == "*" else int(end) + 1
    return [], None
