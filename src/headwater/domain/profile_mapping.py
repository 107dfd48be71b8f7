"""An app's attribute mapping (Okta's profile mapping): for each downstream attribute, an
expression over the directory profile and a push status (pure).

Only what an administrator changed is stored; an attribute left alone keeps the built-in mapping
of ``headwater.domain.mapping`` (which the default expressions shown here describe), so an app
without changes sends exactly what it always did. A stored property is compiled once (cached by
its text) and evaluated per user; a failure fails that user's key only (``MappingError``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping, Set
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Any

from headwater.domain.downstream import AccountAttributes
from headwater.domain.expressions import (
    FUNCTIONS,
    Compiled,
    Context,
    EvaluationError,
    ExpressionError,
    Facts,
    GroupReference,
    Limits,
    Type,
    compile_expression,
)
from headwater.domain.mapping import MappingError, account_fields, base_value, render_user_name
from headwater.errors import InvalidRequest

__all__ = [
    "CUSTOM_TYPES",
    "ENTERPRISE",
    "MAX_CUSTOM",
    "MAX_EXPRESSION",
    "AppMapping",
    "AppSchema",
    "CustomAttribute",
    "MappingChange",
    "MappingImpact",
    "PushStatus",
    "Target",
    "attribute_changes",
    "default_expression",
    "targets",
]

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#: Longest expression text stored for one property (the language allows more; a mapping is one
#: line of an admin's intent).
MAX_EXPRESSION = 1024
#: Custom attributes an app's schema may declare.
MAX_CUSTOM = 100
#: Custom attribute types, Okta's names, and the expression type each accepts.
CUSTOM_TYPES: dict[str, frozenset[Type]] = {
    "string": frozenset({Type.STRING}),
    "integer": frozenset({Type.NUMBER}),
    "number": frozenset({Type.NUMBER}),
    "boolean": frozenset({Type.BOOLEAN}),
    "array": frozenset({Type.ARRAY}),
}
#: Mappings read the directory and the app profile, and group membership (``isMemberOf…``):
#: a membership change of a group a mapping reads re-enqueues the app's keys of exactly the
#: users whose membership changed (``apps.membership_reads``).
_CONTEXT = Context(
    "a mapping",
    frozenset({"user", "appuser"}),
    frozenset(FUNCTIONS),
    None,
    None,
    Limits(),
)


class PushStatus(enum.StrEnum):
    """When an attribute is sent: on create and update, on create only, or never."""

    PUSH = "PUSH"
    CREATE = "CREATE"
    DONT_PUSH = "DONT_PUSH"


@dataclass(frozen=True)
class Target:
    """A downstream attribute: its name in the mapping, where it goes and its type.

    ``field`` is the ``AccountAttributes`` field it fills; otherwise ``path`` is where it sits in
    the SCIM User (sent through ``AccountAttributes.extra``)."""

    name: str
    types: frozenset[Type]
    field: str | None = None
    path: tuple[str, ...] = ()
    title: str = ""


_S = frozenset({Type.STRING})
_CORE: tuple[Target, ...] = (
    Target("userName", _S, "user_name", title="Username"),
    Target("givenName", _S, "given_name", title="Given name"),
    Target("familyName", _S, "family_name", title="Family name"),
    Target("middleName", _S, path=("name", "middleName"), title="Middle name"),
    Target("honorificPrefix", _S, path=("name", "honorificPrefix"), title="Honorific prefix"),
    Target("honorificSuffix", _S, path=("name", "honorificSuffix"), title="Honorific suffix"),
    Target("displayName", _S, "display_name", title="Display name"),
    Target("nickName", _S, path=("nickName",), title="Nickname"),
    Target("email", _S, "email", title="Primary email"),
    Target("title", _S, "title", title="Title"),
    Target("userType", _S, path=("userType",), title="User type"),
    Target("preferredLanguage", _S, path=("preferredLanguage",), title="Preferred language"),
    Target("locale", _S, path=("locale",), title="Locale"),
    Target("timezone", _S, path=("timezone",), title="Time zone"),
    Target("profileUrl", _S, path=("profileUrl",), title="Profile URL"),
    Target("employeeNumber", _S, "employee_number", title="Employee number"),
    Target("costCenter", _S, path=(ENTERPRISE, "costCenter"), title="Cost center"),
    Target("organization", _S, path=(ENTERPRISE, "organization"), title="Organization"),
    Target("division", _S, path=(ENTERPRISE, "division"), title="Division"),
    Target("department", _S, "department", title="Department"),
    Target("manager", _S, "manager_id", title="Manager (the manager's downstream id)"),
)
_BY_NAME = {target.name: target for target in _CORE}
#: The built-in mapping, written as expressions (what the API shows for an unchanged attribute).
_DEFAULTS: dict[str, str] = {
    "givenName": "user.firstName",
    "familyName": "user.lastName",
    "displayName": (
        'String.len(user.displayName) > 0 ? user.displayName : String.join(" ", '
        "String.len(user.firstName) > 0 ? user.firstName : null, "
        "String.len(user.lastName) > 0 ? user.lastName : null)"
    ),
    "email": "user.email",
    "title": "user.title",
    "department": "user.department",
    "employeeNumber": "user.employeeNumber",
    "manager": "user.managerId",
}
#: Assignment-profile keys that the built-in mapping lets override a directory value.
_APP_PROFILE_KEYS = {
    "givenName": "given_name",
    "familyName": "family_name",
    "displayName": "display_name",
    "email": "email",
    "title": "title",
    "department": "department",
    "employeeNumber": "employee_number",
}


def default_expression(name: str) -> str | None:
    """The expression the built-in mapping of ``name`` amounts to (None: not mapped)."""
    return _DEFAULTS.get(name)


@dataclass(frozen=True)
class CustomAttribute:
    """A custom app attribute (Okta's app user schema ``custom`` property)."""

    name: str
    type: str
    title: str
    namespace: str


@dataclass(frozen=True)
class AppSchema:
    """The app user schema's custom attributes, sent under their SCIM extension URN."""

    custom: tuple[CustomAttribute, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> AppSchema:
        items = (data or {}).get("custom") or []
        return cls(
            tuple(
                CustomAttribute(i["name"], i["type"], i.get("title", i["name"]), i["namespace"])
                for i in items
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "custom": [
                {"name": a.name, "type": a.type, "title": a.title, "namespace": a.namespace}
                for a in self.custom
            ]
        }


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,49}$")
_RESERVED_NAMESPACES = frozenset({ENTERPRISE, "urn:ietf:params:scim:schemas:core:2.0:User"})


def default_namespace(app_id: str) -> str:
    """The SCIM extension URN of an app's custom attributes unless one is given."""
    return f"urn:headwater:params:scim:schemas:extension:{app_id}:2.0:User"


def schema_updated(
    schema: AppSchema, changes: Any, *, app_id: str, mapped: Collection[str]
) -> AppSchema:
    """Okta's partial app user schema update (``definitions.custom.properties``): a property
    given is added or replaced, one set to ``null`` is removed (refused while it is mapped)."""
    where = "definitions.custom.properties"
    if not isinstance(changes, Mapping):
        raise _refuse(where, "must be an object")
    current = {a.name: a for a in schema.custom}
    for name, spec in changes.items():
        here = f"{where}.{name}"
        if not isinstance(name, str) or not _NAME.match(name) or name in _BY_NAME:
            raise _refuse(here, "a custom attribute needs a new name of letters, digits and _")
        if spec is None:
            if name in mapped:
                raise _refuse(here, "is mapped; remove its mapping first")
            current.pop(name, None)
            continue
        if not isinstance(spec, Mapping):
            raise _refuse(here, "must be an object")
        kind = spec.get("type")
        if kind not in CUSTOM_TYPES:
            raise _refuse(f"{here}.type", "must be string, integer, number, boolean or array")
        if kind == "array" and (spec.get("items") or {}).get("type", "string") != "string":
            raise _refuse(f"{here}.items", "arrays hold strings")
        title = spec.get("title", name)
        namespace = spec.get("externalNamespace") or default_namespace(app_id)
        external = spec.get("externalName", name)
        if not isinstance(title, str) or not 0 < len(title) <= 255:
            raise _refuse(f"{here}.title", "must be 1 to 255 characters")
        if (
            not isinstance(namespace, str)
            or not namespace.startswith("urn:")
            or len(namespace) > 255
            or namespace in _RESERVED_NAMESPACES
            or any(c.isspace() for c in namespace)
        ):
            raise _refuse(f"{here}.externalNamespace", "must be an extension URN (urn:...)")
        if external != name:
            raise _refuse(f"{here}.externalName", "must equal the attribute's name")
        if name in current and current[name].type != kind and name in mapped:
            raise _refuse(f"{here}.type", "is mapped; remove its mapping to change the type")
        current[name] = CustomAttribute(name, kind, title, namespace)
    if len(current) > MAX_CUSTOM:
        raise _refuse(where, f"at most {MAX_CUSTOM} custom attributes")
    return AppSchema(tuple(current[n] for n in sorted(current)))


@dataclass(frozen=True)
class MappingImpact:
    """What a mapping change would do: the users whose sent attributes change (the keys to
    enqueue), how many of them have an active account to update, and the app's active
    accounts (for the mass-change threshold)."""

    affected: tuple[str, ...]
    updates: int
    active: int


def _flat(pushed: Mapping[str, Any] | None) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in (pushed or {}).items():
        if key != "extra":
            flat[key] = value
            continue
        for name, item in (value or {}).items():
            if isinstance(item, Mapping):
                joiner = ":" if name.startswith("urn:") else "."
                flat.update({f"{name}{joiner}{sub}": v for sub, v in item.items()})
            else:
                flat[name] = item
    return flat


def attribute_changes(
    before: Mapping[str, Any] | None, after: AccountAttributes
) -> dict[str, dict[str, Any]]:
    """``{attribute: {"from": old, "to": new}}`` between what was sent and what would be (SCIM
    paths: ``name.middleName``, ``urn:...:User:costCenter``)."""
    old, new = _flat(before), _flat(after.as_dict())
    changed = [key for key in old.keys() | new.keys() if old.get(key) != new.get(key)]
    return {key: {"from": old.get(key), "to": new.get(key)} for key in sorted(changed)}


def targets(schema: AppSchema) -> dict[str, Target]:
    """Every attribute an app's mapping may set: SCIM core, enterprise, then custom."""
    result = dict(_BY_NAME)
    for attribute in schema.custom:
        result[attribute.name] = Target(
            attribute.name,
            CUSTOM_TYPES[attribute.type],
            path=(attribute.namespace, attribute.name),
            title=attribute.title,
        )
    return result


@dataclass(frozen=True)
class Property:
    """One stored property: the expression (None: the built-in one) and the push status."""

    expression: str | None
    push_status: PushStatus


@lru_cache(maxsize=4096)
def _compiled(text: str, types: frozenset[Type]) -> Compiled:
    """Compile once per (text, type); ExpressionError when it cannot be compiled."""
    return compile_expression(text, context=_CONTEXT, expect=types)


@dataclass(frozen=True)
class AppMapping:
    """The properties an administrator changed, checked against the app's targets."""

    properties: Mapping[str, Property] = field(default_factory=dict)
    schema: AppSchema = field(default_factory=AppSchema)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, schema: AppSchema) -> AppMapping:
        """The stored form (already checked when saved)."""
        stored = (data or {}).get("properties") or {}
        return cls(
            {
                name: Property(value.get("expression"), PushStatus(value["pushStatus"]))
                for name, value in stored.items()
            },
            schema,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "properties": {
                name: {"expression": p.expression, "pushStatus": p.push_status.value}
                for name, p in sorted(self.properties.items())
            }
        }

    @property
    def is_default(self) -> bool:
        return not self.properties

    @cached_property
    def _targets(self) -> dict[str, Target]:
        """``targets(self.schema)``, built once per mapping rather than once per user."""
        return targets(self.schema)

    @cached_property
    def _ordered(self) -> tuple[tuple[str, Property], ...]:
        """The properties in name order, sorted once per mapping."""
        return tuple(sorted(self.properties.items()))

    @cached_property
    def groups_read(self) -> frozenset[GroupReference]:
        """The groups whose membership the mapping's expressions read (``isMemberOf…``)."""
        found: set[GroupReference] = set()
        known = targets(self.schema)
        for name, prop in self.properties.items():
            target = known.get(name)
            if prop.expression is None or target is None:
                continue
            try:
                found.update(_compiled(prop.expression, target.types).groups_referenced)
            except ExpressionError:
                continue
        return frozenset(found)

    @property
    def reads_membership(self) -> bool:
        return bool(self.groups_read)

    def membership_reads_json(self) -> list[list[str]] | None:
        """``apps.membership_reads``: ``[[kind, value], ...]``, None when none."""
        reads = sorted([ref.kind, ref.value] for ref in self.groups_read)
        return reads or None

    def reads_user(self, attribute: str) -> list[str]:
        """The properties whose expression reads ``user.<attribute>``."""
        found = []
        for name, prop in sorted(self.properties.items()):
            target = targets(self.schema).get(name)
            if prop.expression is None or target is None:
                continue
            try:
                compiled = _compiled(prop.expression, target.types)
            except ExpressionError:
                continue
            if ("user", attribute) in compiled.attributes_referenced:
                found.append(name)
        return found

    def effective(self) -> dict[str, tuple[str | None, PushStatus]]:
        """Every mapped attribute: (expression, push status), defaults included."""
        result: dict[str, tuple[str | None, PushStatus]] = {
            name: (text, PushStatus.PUSH) for name, text in _DEFAULTS.items()
        }
        for name, prop in self.properties.items():
            text = prop.expression if prop.expression is not None else _DEFAULTS.get(name)
            result[name] = (text, prop.push_status)
        return result

    def updated(
        self,
        changes: Mapping[str, Any],
        max_properties: int = 200,
        user_types: Mapping[str, Type] | None = None,
    ) -> AppMapping:
        """This mapping with Okta's ``properties`` changes applied, each checked (400 naming the
        property and the position); a property set to ``null`` goes back to the built-in.
        ``user_types``: the user schema's attributes, when it declares custom ones (an
        expression reading another attribute is refused)."""
        if not isinstance(changes, Mapping):
            raise _refuse("properties", "must be an object")
        known = targets(self.schema)
        properties = dict(self.properties)
        for name, change in changes.items():
            where = f"properties.{name}"
            if name not in known:
                raise _refuse(where, f"unknown attribute {name!r} for this app")
            if change is None:
                properties.pop(name, None)
                continue
            properties[name] = _checked_property(known[name], change, where, user_types)
        if len(properties) > max_properties:
            raise _refuse("properties", f"at most {max_properties} attributes may be mapped")
        return AppMapping(properties, self.schema)

    def attributes(
        self,
        user_id: str,
        profile: dict[str, Any],
        app_profile: dict[str, Any],
        *,
        user_name_template: str,
        user_name_override: str | None = None,
        active: bool = True,
        manager_id: str | None = None,
        internal: Mapping[str, object] | None = None,
        last_pushed: Mapping[str, Any] | None = None,
        group_ids: Set[str] = frozenset(),
        group_names: Set[str] = frozenset(),
    ) -> AccountAttributes:
        """The attributes sent for one account: the built-in mapping, then the stored
        properties. ``last_pushed`` (the account exists) keeps CREATE-only attributes as they
        were sent; ``group_ids``/``group_names`` are the user's groups (needed only when the
        mapping reads membership). MappingError when an expression fails for this user."""
        fields = account_fields(
            user_id,
            profile,
            app_profile,
            user_name_template=user_name_template,
            user_name_override=self._template_name(user_name_override),
            active=active,
            manager_id=manager_id,
        )
        if self.is_default:
            return AccountAttributes(**fields)
        known = self._targets
        extra = fields["extra"]
        facts = Facts(
            user=profile,
            internal=internal or {},
            appuser=app_profile,
            group_ids=group_ids,
            group_names=group_names,
        )
        mapped_name = False
        for name, prop in self._ordered:
            target = known.get(name)
            if target is None:  # a custom attribute removed from the schema
                continue
            if name == "userName" and user_name_override is not None:
                continue  # an explicit username on the assignment wins
            value = _property_value(target, prop, facts, last_pushed)
            if target.field is not None:
                if value is not _BUILT_IN:  # each field has one target: still the built-in
                    fields[target.field] = value
            else:
                _place(extra, target.path, value)
            mapped_name = mapped_name or name == "userName"
        if mapped_name:  # after every property: a failing expression is reported first
            _check_user_name(fields["user_name"])
        return AccountAttributes(**fields)

    def _user_name(self, user: _User) -> str:
        """The username the built-in part gives (MappingError when the template fails)."""
        return self._template_name(user.override) or render_user_name(user.template, user.profile)

    def _template_name(self, user_name_override: str | None) -> str | None:
        """The username given instead of the app's template: the assignment's, or a
        placeholder when the mapping's own ``userName`` expression replaces the template."""
        own_name = self.properties.get("userName")
        if user_name_override is None and own_name is not None and own_name.expression is not None:
            return "-"  # replaced by the expression; the template is not evaluated
        return user_name_override


@dataclass(frozen=True)
class _User:
    """One user's inputs to a mapping, as ``AppMapping.attributes`` takes them."""

    profile: dict[str, Any]
    app_profile: dict[str, Any]
    template: str
    override: str | None
    manager_id: str | None
    last_pushed: Mapping[str, Any] | None
    facts: Facts


def _outcome(
    mapping: AppMapping,
    user_id: str,
    profile: dict[str, Any],
    app_profile: dict[str, Any],
    **kw: Any,
) -> tuple[AccountAttributes | None, str | None]:
    try:
        return mapping.attributes(user_id, profile, app_profile, **kw), None
    except MappingError as exc:
        return None, str(exc)


@dataclass(frozen=True)
class MappingChange:
    """A mapping change of one app, compared user by user on what changed only: the
    properties whose expression or push status differ. ``differs`` is exactly whether
    ``attributes`` (or its MappingError) differs between the two mappings, without evaluating
    the properties they share, or the built-in fields neither changes."""

    before: AppMapping
    after: AppMapping

    @cached_property
    def changed(self) -> tuple[str, ...] | None:
        """The attributes mapped differently, in name order (None: the schemas differ, so
        every user is compared in full)."""
        if self.before.schema != self.after.schema:
            return None
        known = self.before._targets
        old, new = self.before.properties, self.after.properties
        return tuple(
            sorted(n for n in old.keys() | new.keys() if n in known and old.get(n) != new.get(n))
        )

    @property
    def reads_manager(self) -> bool:
        """Whether comparing needs the manager's account id (the manager is mapped differently)."""
        return self.changed is None or "manager" in self.changed

    @property
    def reads_pushed(self) -> bool:
        """Whether comparing needs what was sent (only a CREATE-only property reads it)."""
        return any(
            prop.push_status is PushStatus.CREATE
            for mapping in (self.before, self.after)
            for prop in mapping.properties.values()
        )

    def differs(
        self,
        user_id: str,
        profile: dict[str, Any],
        app_profile: dict[str, Any],
        *,
        user_name_template: str,
        user_name_override: str | None = None,
        active: bool = True,
        manager_id: str | None = None,
        internal: Mapping[str, object] | None = None,
        last_pushed: Mapping[str, Any] | None = None,
        group_ids: Set[str] = frozenset(),
        group_names: Set[str] = frozenset(),
    ) -> bool:
        """Whether this user's attributes, or mapping failure, differ (``attributes``'s
        arguments)."""
        changed = self.changed
        if changed == ():
            return False
        if changed is not None:
            facts = Facts(
                user=profile,
                internal=internal or {},
                appuser=app_profile,
                group_ids=group_ids,
                group_names=group_names,
            )
            user = _User(
                profile,
                app_profile,
                user_name_template,
                user_name_override,
                manager_id,
                last_pushed,
                facts,
            )
            old, new = self._values(self.before, user), self._values(self.after, user)
            if old is not None and new is not None:
                # The shared properties give the same in both: the same attributes when the
                # changed ones agree, the same failure (theirs comes first) when one fails.
                return old != new and not self._shared_fails(user)
        kw: dict[str, Any] = {
            "user_name_template": user_name_template,
            "user_name_override": user_name_override,
            "active": active,
            "manager_id": manager_id,
            "internal": internal,
            "last_pushed": last_pushed,
            "group_ids": group_ids,
            "group_names": group_names,
        }
        before = _outcome(self.before, user_id, profile, app_profile, **kw)
        return before != _outcome(self.after, user_id, profile, app_profile, **kw)

    def _values(self, mapping: AppMapping, user: _User) -> tuple[Any, ...] | None:
        """What ``mapping`` sends in each changed attribute; None when it fails for this user
        or an attribute also comes from the assignment's extras (then compared in full)."""
        known = mapping._targets
        values = []
        value: Any
        try:
            for name in self.changed or ():
                target = known[name]
                if target.field is None and target.path[0] in user.app_profile:
                    return None
                prop = mapping.properties.get(name)
                if name == "userName":
                    value = mapping._user_name(user)
                    if prop is not None and user.override is None:
                        sent = _property_value(target, prop, user.facts, user.last_pushed)
                        value = value if sent is _BUILT_IN else sent
                        _check_user_name(value)
                elif prop is None:
                    value = _BUILT_IN
                else:
                    value = _property_value(target, prop, user.facts, user.last_pushed)
                if value is _BUILT_IN:
                    value = (
                        None
                        if target.field is None
                        else base_value(
                            target.field, user.profile, user.app_profile, user.manager_id
                        )
                    )
                values.append(value)
        except MappingError:
            return None
        return tuple(values)

    def _shared_fails(self, user: _User) -> bool:
        """Whether the part both mappings share fails for this user (the template, the
        properties that did not change, the username check when the username did not)."""
        changed = self.changed or ()
        mapping = self.before
        known = mapping._targets
        try:
            if "userName" not in changed:
                user_name = mapping._user_name(user)
            for name, prop in mapping._ordered:
                target = known.get(name)
                if target is None or name in changed:
                    continue
                if name == "userName" and user.override is not None:
                    continue
                value = _property_value(target, prop, user.facts, user.last_pushed)
                if name == "userName":
                    _check_user_name(user_name if value is _BUILT_IN else value)
        except MappingError:
            return True
        return False


#: A property that sends the built-in field's value.
_BUILT_IN = object()


def _property_value(
    target: Target,
    prop: Property,
    facts: Facts,
    last_pushed: Mapping[str, Any] | None,
) -> Any:
    """What one stored property sends for one user; ``_BUILT_IN``: the built-in field."""
    if prop.push_status is PushStatus.DONT_PUSH:
        return None
    if prop.push_status is PushStatus.CREATE and last_pushed is not None:
        return _pushed_value(target, last_pushed)
    if prop.expression is None or (target.field is not None and target.name == "manager"):
        return _BUILT_IN if target.field is not None else None
    return _evaluate(target, prop.expression, facts)


def _check_user_name(value: Any) -> None:
    if not value:
        raise MappingError("userName: the mapping gives no username for this user")
    if len(str(value)) > 100:
        raise MappingError("userName: username must be 1 to 100 characters")


def _pushed_value(target: Target, pushed: Mapping[str, Any]) -> Any:
    """What was sent at creation (the stored ``AccountAttributes.as_dict``)."""
    if target.field is not None:
        key = "managerId" if target.name == "manager" else target.name
        return pushed.get(key)
    node: Any = pushed.get("extra") or {}
    for part in target.path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _place(extra: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set (or, for None, leave out) ``path`` in the extra attributes, copying nested objects.

    A value that is not an object where the path needs one (an assignment profile that gives
    the enterprise extension as a string, say) is replaced: the mapping wins, as it does for
    the built-in fields."""
    head, *rest = path
    if not rest:
        if value is None:
            extra.pop(head, None)
        else:
            extra[head] = value
        return
    current = extra.get(head)
    nested = dict(current) if isinstance(current, Mapping) else {}
    _place(nested, tuple(rest), value)
    if nested:
        extra[head] = nested
    else:
        extra.pop(head, None)


def _evaluate(target: Target, text: str, facts: Facts) -> Any:
    try:
        value = _compiled(text, target.types).evaluate(facts)
    except (EvaluationError, ExpressionError) as exc:
        raise MappingError(f"{target.name}: {exc}") from exc
    if value is None or value == "":
        return None
    if target.types == _S:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    if Type.BOOLEAN in target.types:
        if not isinstance(value, bool):
            raise MappingError(f"{target.name}: the expression gives {value!r}, not a boolean")
        return value
    if Type.NUMBER in target.types:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MappingError(f"{target.name}: the expression gives {value!r}, not a number")
        return value
    if not isinstance(value, tuple):
        raise MappingError(f"{target.name}: the expression gives {value!r}, not an array")
    return list(value)


def _checked_property(
    target: Target, change: Any, where: str, user_types: Mapping[str, Type] | None = None
) -> Property:
    if not isinstance(change, Mapping):
        raise _refuse(where, "must be an object with expression and pushStatus")
    unknown = set(change) - {"expression", "pushStatus"}
    if unknown:
        raise _refuse(where, f"unknown field {sorted(unknown)[0]!r}")
    status_text = change.get("pushStatus", "PUSH")
    try:
        status = PushStatus(status_text)
    except ValueError:
        raise _refuse(f"{where}.pushStatus", "must be PUSH, CREATE or DONT_PUSH") from None
    if target.name == "userName" and status is PushStatus.DONT_PUSH:
        raise _refuse(f"{where}.pushStatus", "every account needs a userName")
    text = change.get("expression")
    if text is not None:
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_EXPRESSION:
            raise _refuse(
                f"{where}.expression", f"must be text of 1 to {MAX_EXPRESSION} characters"
            )
        if target.name == "manager" and text != _DEFAULTS["manager"]:
            raise _refuse(
                f"{where}.expression",
                "the manager is sent as the manager's downstream id; only pushStatus can change",
            )
        if text == _DEFAULTS.get(target.name):
            text = None
        else:
            try:
                _compiled(text, target.types)
                if user_types is not None:
                    typed = replace(_CONTEXT, user=user_types)
                    compile_expression(text, context=typed, expect=target.types)
            except ExpressionError as exc:
                raise exc.for_field(f"{where}.expression") from exc
    elif (
        target.name not in _DEFAULTS
        and target.name != "userName"
        and status is not (PushStatus.DONT_PUSH)
    ):
        raise _refuse(f"{where}.expression", "is required for an attribute with no default")
    return Property(text, status)


def _refuse(where: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"Api validation failed: {where}", [f"{where}: {problem}"])
