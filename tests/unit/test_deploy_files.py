"""deploy/ files parse, and name commands the project really has."""

from __future__ import annotations

import configparser
import json
import shlex
from pathlib import Path

import pytest

from service.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize("unit", sorted((DEPLOY / "systemd").glob("*.service")), ids=str)
def test_systemd_units_parse_and_run_real_subcommands(unit: Path) -> None:
    """Each unit has the three sections and its ExecStart is a goalstore subcommand."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(unit)

    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    argv = shlex.split(parser["Service"]["ExecStart"])
    assert argv[0].endswith("/goalstore")
    build_parser().parse_args(argv[1:])  # exits (fails the test) on an unknown subcommand


@pytest.mark.parametrize("scenario", sorted((DEPLOY / "scenarios").glob("*.json")), ids=str)
def test_shipped_scenarios_are_valid(scenario: Path) -> None:
    """Every shipped scenario passes the scenario schema, with at least one expected conflict."""
    from service.scenario import Scenario

    parsed = Scenario.model_validate(json.loads(scenario.read_text()))

    assert any(step.expect == "conflict" for step in parsed.steps)


def test_systemd_units_share_one_database() -> None:
    """Migrations run against the same SQLite file the API serves."""
    prefix = "Environment=GOALSTORE_DATABASE="
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    # Read lines, not configparser: systemd allows a key (Environment=) many times.
    databases = {
        unit.name: [line[len(prefix) :] for line in unit.read_text().splitlines()
                    if line.startswith(prefix)]
        for unit in units
    }  # fmt: skip

    assert 2 <= len(units)
    assert {unit.name: ["/var/lib/goalstore/goalstore.db"] for unit in units} == databases
