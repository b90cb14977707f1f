"""Settings from the environment: valid forms, and clear errors that never echo secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.config import ConfigError, Settings

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
GOOD = {
    "appid": "wx0123456789abcdef",
    "secret": "TOPSECRET",
    "token": "tok",
    "encoding_aes_key": KEY,
}


# The form Cloud Run gets: one variable per secret, each mounted from Secret Manager.
PER_VARIABLE = {
    "WECHAT_COMPONENT_APPIDS": "wx0123456789abcdef",
    "WECHAT_COMPONENT_WX0123456789ABCDEF_SECRET": "TOPSECRET",
    "WECHAT_COMPONENT_WX0123456789ABCDEF_TOKEN": "tok",
    "WECHAT_COMPONENT_WX0123456789ABCDEF_ENCODING_AES_KEY": KEY,
}


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_inline_components_and_defaults() -> None:
    s = settings(WECHAT_COMPONENTS=json.dumps([GOOD]))
    component = s.components["wx0123456789abcdef"]
    assert component.secret == "TOPSECRET" and component.previous_encoding_aes_key is None
    assert s.wechat_api_base == "https://api.weixin.qq.com"
    assert s.service_api_keys == ()
    assert "TOPSECRET" not in repr(s) and KEY not in repr(s)


def test_components_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "components.json"
    path.write_text(json.dumps([{**GOOD, "previous_encoding_aes_key": KEY}]))
    s = settings(
        WECHAT_COMPONENTS_FILE=str(path),
        WECHAT_API_BASE="http://127.0.0.1:8081/",
        SERVICE_API_KEYS=" a , b ,",
        COMPONENT_TOKEN_REFRESH_MARGIN="120",
    )
    assert s.components["wx0123456789abcdef"].previous_encoding_aes_key == KEY
    assert s.wechat_api_base == "http://127.0.0.1:8081"
    assert s.service_api_keys == ("a", "b")
    assert s.component_token_refresh_margin == 120


def test_components_one_variable_per_secret() -> None:
    other = "wx00000000000000ff"
    s = Settings.from_env(
        {
            **PER_VARIABLE,
            "WECHAT_COMPONENT_APPIDS": f" wx0123456789abcdef , {other}",
            "WECHAT_COMPONENT_WX0123456789ABCDEF_PREVIOUS_ENCODING_AES_KEY": KEY[::-1],
            "WECHAT_COMPONENT_WX00000000000000FF_SECRET": "s2",
            "WECHAT_COMPONENT_WX00000000000000FF_TOKEN": "t2",
            "WECHAT_COMPONENT_WX00000000000000FF_ENCODING_AES_KEY": KEY,
        }
    )
    assert list(s.components) == ["wx0123456789abcdef", other]
    first = s.components["wx0123456789abcdef"]
    assert (first.secret, first.token, first.encoding_aes_key) == ("TOPSECRET", "tok", KEY)
    assert first.previous_encoding_aes_key == KEY[::-1]
    assert s.components[other].secret == "s2"
    assert s.components[other].previous_encoding_aes_key is None


def test_roles_and_internal_auth() -> None:
    assert settings(WECHAT_COMPONENTS=json.dumps([GOOD])).service_role == "all"
    internal = Settings.from_env(
        {**PER_VARIABLE, "SERVICE_ROLE": "internal", "INTERNAL_AUTH": "cloud_run_iam"}
    )
    assert internal.internal_auth == "cloud_run_iam"
    assert internal.serves("internal") and not internal.serves("public")
    both = Settings.from_env(PER_VARIABLE)
    assert both.serves("internal") and both.serves("public")
    assert both.internal_auth == "api_key"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no components configured: set WECHAT_COMPONENTS"),
        (
            {"WECHAT_COMPONENTS": "[", "WECHAT_COMPONENTS_FILE": "x"},
            "set only one of WECHAT_COMPONENTS and WECHAT_COMPONENTS_FILE",
        ),
        (
            {"WECHAT_COMPONENTS": "[", "WECHAT_COMPONENT_APPIDS": "x"},
            "set only one of WECHAT_COMPONENTS and WECHAT_COMPONENT_APPIDS",
        ),
        ({**PER_VARIABLE, "WECHAT_COMPONENT_APPIDS": "wxABC"}, "'wxABC' is not 'wx' followed"),
        ({**PER_VARIABLE, "WECHAT_COMPONENT_APPIDS": " , "}, "list at least one component"),
        (
            {**PER_VARIABLE, "WECHAT_COMPONENT_APPIDS": "wx0123456789abcdef,wx0123456789abcdef"},
            "listed twice",
        ),
        (
            {**PER_VARIABLE, "WECHAT_COMPONENT_WX0123456789ABCDEF_TOKEN": ""},
            "WECHAT_COMPONENT_WX0123456789ABCDEF_TOKEN is required",
        ),
        (
            {**PER_VARIABLE, "WECHAT_COMPONENT_WX0123456789ABCDEF_ENCODING_AES_KEY": "TOPSECRET"},
            "43-character",
        ),
        ({**PER_VARIABLE, "SERVICE_ROLE": "admin"}, "SERVICE_ROLE must be one of all, public"),
        ({**PER_VARIABLE, "INTERNAL_AUTH": "iam"}, "INTERNAL_AUTH must be one of api_key"),
        ({**PER_VARIABLE, "INTERNAL_AUTH": "cloud_run_iam"}, "needs SERVICE_ROLE=internal"),
        (
            {**PER_VARIABLE, "INTERNAL_AUTH": "cloud_run_iam", "SERVICE_ROLE": "public"},
            "needs SERVICE_ROLE=internal",
        ),
        ({"WECHAT_COMPONENTS": '[{"secret": "TOPSECRET"'}, "not valid JSON (line 1"),
        ({"WECHAT_COMPONENTS": "[]"}, "non-empty JSON array"),
        ({"WECHAT_COMPONENTS": "[1]"}, "must be a JSON object"),
        ({"WECHAT_COMPONENTS": json.dumps([{**GOOD, "secret": ""}])}, "'secret' is required"),
        ({"WECHAT_COMPONENTS": json.dumps([{**GOOD, "appid": "wxABC"}])}, "16 hex digits"),
        (
            {"WECHAT_COMPONENTS": json.dumps([{**GOOD, "encoding_aes_key": "TOPSECRET"}])},
            "43-character",
        ),
        (
            {"WECHAT_COMPONENTS": json.dumps([{**GOOD, "previous_encoding_aes_key": "x"}])},
            "previous_encoding_aes_key must be",
        ),
        ({"WECHAT_COMPONENTS": json.dumps([GOOD, GOOD])}, "listed twice"),
        ({"WECHAT_COMPONENTS": json.dumps([{**GOOD, "scret": "x"}])}, "unknown keys ['scret']"),
        ({"WECHAT_COMPONENTS_FILE": "/nonexistent/components.json"}, "cannot read it"),
        (
            {"WECHAT_COMPONENTS": json.dumps([GOOD]), "WECHAT_API_BASE": "api.weixin.qq.com"},
            "http(s) URL",
        ),
        (
            {"WECHAT_COMPONENTS": json.dumps([GOOD]), "REFRESH_LEASE_SECONDS": "soon"},
            "REFRESH_LEASE_SECONDS must be a number",
        ),
    ],
)
def test_bad_configuration_says_what_and_how(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)
    assert "TOPSECRET" not in str(caught.value)
