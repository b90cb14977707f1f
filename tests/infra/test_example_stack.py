"""The example Pulumi.dev.yaml beside the README: as shipped it fails on every placeholder,
saying how to fix each; filled in as the README says, it is a valid configuration."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import ConfigError, parse_config
from service.routes import parse_routes
from tests.infra.pulumi_mocks import APPID_A, SECRET_VALUES, full

EXAMPLE = Path(__file__).resolve().parents[2] / "Pulumi.dev.yaml"


def example_config(uncomment: bool = False) -> dict[str, Any]:
    """The values as Pulumi hands them to the program: strings, lists as JSON. With
    ``uncomment``, the optional keys shown in comments are set too (a key, a list item, or a
    list item's further keys)."""
    text = EXAMPLE.read_text()
    if uncomment:
        text = re.sub(
            r"^  # (wechat-component-gateway:|  - |    [a-z_]+:)", r"  \1", text, flags=re.M
        )
    document = yaml.safe_load(text)
    assert set(document) == {"config"}, "no encryptionsalt or secure values in the example"
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in document["config"].items()
    }


def test_the_example_holds_no_secret() -> None:
    text = EXAMPLE.read_text()
    assert "secure:" not in text and "encryptionsalt" not in text


def test_as_shipped_every_placeholder_is_named_with_its_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(example_config(), [], "dev")
    message = str(caught.value)
    for key in ("'gcp:project'", "'wechat-component-gateway:components[0]'"):
        line = next(line for line in message.splitlines() if key in line)
        assert "pulumi config set" in line
    assert "unknown config" not in message


@pytest.mark.parametrize("optional_keys", [False, True])
def test_filled_in_it_is_valid(optional_keys: bool) -> None:
    raw = {
        key: value.replace("REPLACE_ME-with-your-project-id", "my-project-123")
        .replace("<project>", "my-project-123")
        .replace("<tag>", "v1")
        for key, value in example_config(optional_keys).items()
    }
    raw[full("components")] = json.dumps([APPID_A])
    secrets = {full(k): v for k, v in SECRET_VALUES.items() if k.startswith(APPID_A)}
    config = parse_config({**raw, **secrets}, list(secrets), "dev")
    assert config.appids == (APPID_A,)
    assert (config.min_instances, config.internal_min_instances, config.max_instances) == (1, 0, 10)
    assert config.internal_ingress == "internal"
    assert (config.image is not None) == optional_keys
    assert bool(config.internal_invokers) == optional_keys
    # The routes' example is the service's own shape, and its subscription is on its topic.
    assert (config.message_routes is not None) == optional_keys
    assert config.message_topics == (("wechat-messages",) if optional_keys else ())
    assert [s.name for s in config.message_subscriptions] == (["orders"] if optional_keys else [])
    if config.message_routes is not None:
        assert [r.name for r in parse_routes(config.message_routes)] == ["bot", "all"]
