from keystile.domain.errors import InvalidParameter, ProviderError, ValidationError


def test_provider_error_sentence_names_idp_status_code_and_message():
    err = ProviderError(
        provider_type="okta",
        operation="register",
        status=400,
        code="invalid_client_metadata",
        description="client_name: An object with this field already exists",
    )
    assert str(err) == (
        "Okta register failed: 400 invalid_client_metadata: client_name: An object with this field already exists"
    )
    assert err.detail == str(err)


def test_provider_error_description_is_capped():
    err = ProviderError(provider_type="auth0", operation="deregister", description="x" * 900)
    assert len(err.description) == 500


def test_invalid_parameter_omits_empty_extras():
    item = InvalidParameter(field="name", rule="required", reason="name is required")
    assert item.as_dict() == {
        "field": "name",
        "rule": "required",
        "reason": "name is required",
        "source": "body",
    }
    e = ValidationError.single("strategy_type", "enum", "no", choices=["a", "b"])
    assert e.items[0].as_dict()["choices"] == ["a", "b"]


def test_an_idp_retry_after_reaches_the_client_with_the_502():
    from keystile.api.problems import to_response

    throttled = ProviderError(provider_type="okta", operation="register", status=429, retry_after=1.2)
    response = to_response(throttled)
    assert (response.status_code, response.headers["retry-after"]) == (502, "2")
    assert "retry-after" not in to_response(ProviderError(provider_type="okta", operation="register")).headers
