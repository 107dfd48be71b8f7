"""The official Okta Python SDK reads and updates the user schema over real HTTP, and a profile
of the wrong type written through it is refused naming the attribute."""

from __future__ import annotations

from typing import Any

from headwater.testing.toolkit import require_module, sdk_ok

okta_models = require_module("okta.models")


async def test_sdk_reads_and_updates_the_user_schema(okta_client: Any) -> None:
    schema = sdk_ok(await okta_client.get_user_schema("default"))
    assert schema.definitions.custom.properties == {}
    assert schema.definitions.base.properties.login.type == "string"
    update = okta_models.UserSchema(
        definitions=okta_models.UserSchemaDefinitions(
            custom=okta_models.UserSchemaPublic(
                id="#custom",
                type="object",
                properties={
                    "costCode": okta_models.UserSchemaAttribute(
                        title="Cost code", type="string", max_length=8
                    ),
                    "seniority": okta_models.UserSchemaAttribute(
                        title="Seniority", type="integer", description="years"
                    ),
                },
            )
        )
    )
    updated = sdk_ok(await okta_client.update_user_profile("default", update))
    custom = updated.definitions.custom.properties
    assert sorted(custom) == ["costCode", "seniority"]
    assert custom["costCode"].max_length == 8
    assert custom["seniority"].type == "integer"
    again = sdk_ok(await okta_client.get_user_schema("default"))
    assert sorted(again.definitions.custom.properties) == ["costCode", "seniority"]

    profile = {
        "login": "sdk@example.com",
        "email": "sdk@example.com",
        "firstName": "Sdk",
        "lastName": "User",
        "seniority": "ten",
    }
    request = okta_models.CreateUserRequest(profile=okta_models.UserProfile.from_dict(profile))
    _, _, error = await okta_client.create_user(request)
    assert error is not None and "seniority: must be an integer" in str(error)
