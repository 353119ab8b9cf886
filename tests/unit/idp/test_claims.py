"""Client metadata rules (IdpClientMetadataClaims on Authlib's RFC 7591 claims)."""

from __future__ import annotations

import pytest
from authlib.oauth2.rfc7591 import InvalidClientMetadataError, InvalidRedirectURIError

from keystile.idp.claims import IdpClientMetadataClaims

SERVER = {"scopes_supported": ["read", "write", "dcr"]}


def validated(**metadata) -> dict:
    claims = IdpClientMetadataClaims(metadata, {}, {}, SERVER)
    claims.validate()
    return claims.get_registered_claims()


def test_machine_client_defaults():
    assert validated(client_name="x", response_types=[]) == {
        "client_name": "x",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "scope": "read write",
        "token_endpoint_auth_method": "client_secret_basic",
    }


def test_scope_is_normalised_and_checked():
    assert validated(response_types=[], scope="write  read write")["scope"] == "write read"
    with pytest.raises(InvalidClientMetadataError, match="reserved"):
        validated(response_types=[], scope="read dcr")
    with pytest.raises(InvalidClientMetadataError, match="unknown scope: admin"):
        validated(response_types=[], scope="admin")
    with pytest.raises(InvalidClientMetadataError, match="space-separated"):
        validated(response_types=[], scope=["read"])


def test_unknown_scope_description_is_made_safe_for_the_wire():
    with pytest.raises(InvalidClientMetadataError) as caught:
        validated(response_types=[], scope='ad"min\\x')
    assert caught.value.description == "unknown scope: ad?min?x (supported: read write)"


def test_omitted_response_types_mean_code_and_need_redirect_uris():
    with pytest.raises(InvalidRedirectURIError):
        validated(client_name="x")
    with pytest.raises(InvalidRedirectURIError):
        validated(response_types=["code"], grant_types=["authorization_code"], redirect_uris=[])


def test_a_redirect_uri_client_is_recorded():
    metadata = validated(
        grant_types=["authorization_code", "client_credentials"],
        response_types=["code"],
        redirect_uris=["https://shop.example/cb"],
    )
    assert metadata["redirect_uris"] == ["https://shop.example/cb"]
    assert metadata["response_types"] == ["code"]


@pytest.mark.parametrize(
    "metadata",
    [
        {"response_types": [], "grant_types": ["implicit"]},
        {"response_types": [], "grant_types": []},
        {"response_types": [], "grant_types": "client_credentials"},
        {"response_types": ["token"], "redirect_uris": ["https://a.example/cb"]},
        {"response_types": "code"},
        {"response_types": ["code"], "grant_types": ["client_credentials"], "redirect_uris": ["https://a.example/"]},
        {"response_types": [], "grant_types": ["authorization_code"]},
        {"response_types": [], "token_endpoint_auth_method": "private_key_jwt"},
        {"response_types": [], "token_endpoint_auth_method": "none"},
    ],
)
def test_refused_metadata(metadata):
    with pytest.raises(InvalidClientMetadataError):
        validated(**metadata)


@pytest.mark.parametrize("uris", ["https://a.example/cb", [1], ["not a url"], ["https://a.example/cb#frag"]])
def test_bad_redirect_uris_are_invalid_redirect_uri(uris):
    with pytest.raises(InvalidRedirectURIError):
        validated(response_types=[], redirect_uris=uris)


def test_client_secret_post_is_accepted():
    assert (
        validated(response_types=[], token_endpoint_auth_method="client_secret_post")["token_endpoint_auth_method"]
        == "client_secret_post"
    )
