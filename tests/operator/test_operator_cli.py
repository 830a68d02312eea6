"""``infadapter operator``: bad arguments and settings are refused with exit code 2, no traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from infadapter.cli import app


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--log-format", "xml"], {}, "--log-format"),
        (["--peering", "x", "--standalone"], {}, "--peering"),
        (["--metrics-port", "70000"], {}, "--metrics-port"),
        ([], {"INFADAPTER_TIMER_RESOLUTION_S": "soon"}, "INFADAPTER_TIMER_RESOLUTION_S"),
    ],
)
def test_bad_operator_arguments_exit_2_with_the_reason(args, env, needle, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["operator", *args])
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output


def test_an_unknown_policy_is_refused_naming_the_setting() -> None:
    from infadapter.errors import InvalidInput
    from infadapter.operator.settings import OperatorConfig

    with pytest.raises(InvalidInput, match="INFADAPTER_POLICY"):
        OperatorConfig.from_env({"INFADAPTER_POLICY": "peak"})
    assert OperatorConfig.from_env({"INFADAPTER_POLICY": "msplus"}).policy == "msplus"
