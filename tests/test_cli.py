"""The `swapcam` dispatcher: every existing subcommand has a --help that explains every option; unknown -> exit 2."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from realtime import cli

REPO = Path(__file__).resolve().parents[1]
EXISTING = [name for name, (module, _) in cli.COMMANDS.items() if importlib.util.find_spec(module) is not None]


def test_core_commands_exist():
    # the foundation's commands must be routable; others join EXISTING as their modules land
    assert {"doctor", "align", "make-clip"} <= set(EXISTING)


@pytest.mark.parametrize("name", EXISTING)
def test_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([name, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: swapcam {name}")
    parser, _ = cli.build_parser(name)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help.strip(), (
            f"swapcam {name}: option {action.option_strings or action.dest} has no help text"
        )
        for flag in action.option_strings:
            assert flag in out


def test_top_level_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out
    assert cli.main([]) == 0  # no command: the same help, not an error


def test_unknown_command_exits_2(capsys):
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err and "doctor" in err


def test_unknown_command_in_a_fresh_process():
    proc = subprocess.run(
        [sys.executable, "-m", "realtime.cli", "frobnicate", "--x"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "frobnicate" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_option_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["align", "--no-such-option"])
    assert info.value.code == 2
    assert "usage: swapcam align" in capsys.readouterr().err


def test_version(capsys):
    from realtime import __version__

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"swapcam {__version__}"
