"""A downstream that echoes credentials back gets none of them into an error.

scim2-server never echoes a request and has no OAuth token endpoint, so the echoing answers here
come from small handlers; what is checked is only what the connector's errors carry.
"""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import httpx
import pytest

from headwater.connectors.auth import BasicAuth, BearerTokenAuth, build_auth
from headwater.connectors.errors import DownstreamError
from headwater.connectors.scim import ScimConnector
from headwater.connectors.scrub import MASK, MAX_DETAIL, Scrubber, scrub_text
from headwater.domain.settings import ProvisioningSettings

TOKEN = "tok-5e3cr3t-bearer-value"
PASSWORD = "pa55-w0rd/with+signs="
CLIENT_SECRET = "cl1ent-s3cret/with+signs="
ACCESS_TOKEN = "issued-access-token-77aa"
TOKEN_URL = "https://idp.example.com/oauth2/token"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: ***"),
        (
            "headers {'authorization': 'Basic dXNlcjpwYXNz', 'accept': '*/*'}",
            "'authorization': '***'",
        ),
        ('{"Authorization":"SSWS 00abcdef"}', '"Authorization":"***"'),
        ("proxy-authorization=Negotiate xyz", "proxy-authorization=***"),
        ("got bearer abc123 from you", "got bearer *** from you"),
        ("BASIC dXNlcjpwYXNz==", "BASIC ***"),
        ("ssws 00TOKEN", "ssws ***"),
        ("Bearer%20abc123", "Bearer%20***"),
    ],
)
def test_credential_shapes_are_scrubbed(text: str, expected: str) -> None:
    assert expected in scrub_text(text)


def test_secrets_are_scrubbed_in_clear_and_encoded() -> None:
    scrubber = Scrubber.for_secret(
        {
            "username": "svc",
            "password": PASSWORD,
            "client_id": "cid",
            "client_secret": CLIENT_SECRET,
        }
    )
    pair = base64.b64encode(f"svc:{PASSWORD}".encode()).decode()
    text = f"{PASSWORD} {quote_plus(PASSWORD)} {CLIENT_SECRET} x{pair}y"
    cleaned = scrubber(text)
    for leaked in (PASSWORD, quote_plus(PASSWORD), CLIENT_SECRET, pair):
        assert leaked not in cleaned
    assert cleaned.count(MASK) == 4


def test_scrubbing_comes_before_the_cap_and_the_cap_holds() -> None:
    text = "x" * (MAX_DETAIL - 5) + TOKEN
    cleaned = scrub_text(text, [TOKEN])
    assert len(cleaned) <= MAX_DETAIL
    assert TOKEN[:4] not in cleaned
    assert len(scrub_text("y" * 100_000)) == MAX_DETAIL


def test_scrubber_remembers_issued_tokens_and_shows_nothing() -> None:
    scrubber = Scrubber([TOKEN])
    scrubber.add(ACCESS_TOKEN)
    assert scrubber(f"{TOKEN} {ACCESS_TOKEN}") == f"{MASK} {MASK}"
    assert TOKEN not in repr(scrubber)


# --- Through the connector -----------------------------------------------------------------------


def echoing(request: httpx.Request) -> httpx.Response:
    """A SCIM error whose detail repeats the request's headers and credential."""
    sent = request.headers.get("Authorization", "")
    detail = f"bad request; you sent Authorization: {sent}; credential {sent.split(' ')[-1]}"
    return httpx.Response(
        400, json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "detail": detail}
    )


def assert_clean(error: DownstreamError, *secrets: str) -> None:
    for text in (str(error), error.message, error.detail, repr(error), *map(str, error.args)):
        for secret in secrets:
            assert secret not in text, text
    assert error.__cause__ is None


@pytest.mark.parametrize(
    ("auth", "secrets"),
    [
        (BearerTokenAuth(TOKEN), (TOKEN,)),
        (
            BasicAuth("svc", PASSWORD),
            (PASSWORD, base64.b64encode(f"svc:{PASSWORD}".encode()).decode()),
        ),
    ],
)
async def test_a_scim_error_that_echoes_the_header_is_scrubbed(
    auth: httpx.Auth, secrets: tuple[str, ...]
) -> None:
    scrubber = Scrubber.for_secret({"token": TOKEN, "username": "svc", "password": PASSWORD})
    async with ScimConnector(
        "https://app.example.com/scim/v2",
        auth=auth,
        settings=ProvisioningSettings(),
        transport=httpx.MockTransport(echoing),
        scrubber=scrubber,
    ) as scim:
        with pytest.raises(DownstreamError) as caught:
            await scim.get_user("u1")
    assert_clean(caught.value, *secrets)
    assert caught.value.message == "GET /Users/{id}: HTTP 400"
    assert caught.value.detail.startswith("bad request; you sent Authorization: ***")


async def test_a_protocol_error_that_echoes_the_header_is_scrubbed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(f"illegal header line: {request.headers['Authorization']}")

    async with ScimConnector(
        "https://app.example.com/scim/v2",
        auth=BearerTokenAuth(TOKEN),
        settings=ProvisioningSettings(),
        transport=httpx.MockTransport(handler),
        scrubber=Scrubber([TOKEN]),
    ) as scim:
        with pytest.raises(DownstreamError) as caught:
            await scim.find_user("alice")
    assert_clean(caught.value, TOKEN)


def oauth_connector(handler: httpx.MockTransport, client_auth: str) -> ScimConnector:
    secret = {
        "token_url": TOKEN_URL,
        "client_id": "cid",
        "client_secret": CLIENT_SECRET,
        "client_auth": client_auth,
    }
    scrubber = Scrubber.for_secret(secret)
    return ScimConnector(
        "https://app.example.com/scim/v2",
        auth=build_auth("OAUTH2", secret, scrubber=scrubber),
        settings=ProvisioningSettings(),
        transport=handler,
        scrubber=scrubber,
    )


@pytest.mark.parametrize("client_auth", ["basic", "post"])
async def test_a_token_endpoint_that_echoes_the_client_secret_is_scrubbed(client_auth: str) -> None:
    """The endpoint repeats what it was sent (the form, or the Basic header) in its error."""

    def handler(request: httpx.Request) -> httpx.Response:
        said = f"{request.content.decode()} {request.headers.get('Authorization', '')}"
        return httpx.Response(
            401,
            json={
                "error": "invalid_client",
                "error_description": f"rejected: {said} ({CLIENT_SECRET})",
            },
        )

    async with oauth_connector(httpx.MockTransport(handler), client_auth) as scim:
        with pytest.raises(DownstreamError) as caught:
            await scim.test_connection()
    pair = base64.b64encode(f"cid:{CLIENT_SECRET}".encode()).decode()
    assert_clean(caught.value, CLIENT_SECRET, quote_plus(CLIENT_SECRET), pair)
    assert caught.value.message.startswith("POST token URL: OAuth token request failed (HTTP 401)")
    assert caught.value.detail.startswith("invalid_client: rejected:")


async def test_an_echoed_access_token_is_scrubbed() -> None:
    """The access token the endpoint issued is a secret too, though nobody stored it."""

    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return httpx.Response(200, json={"access_token": ACCESS_TOKEN, "expires_in": 3600})
        sent = request.headers["Authorization"].split(" ")[-1]
        return httpx.Response(403, json={"detail": f"token {sent} lacks scope"})

    async with oauth_connector(httpx.MockTransport(handler), "basic") as scim:
        with pytest.raises(DownstreamError) as caught:
            await scim.get_user("u1")
    assert_clean(caught.value, ACCESS_TOKEN, CLIENT_SECRET)
    assert caught.value.detail == f"token {MASK} lacks scope"
