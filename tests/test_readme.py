"""The README matches the code: its quick-mode table is the one ``reproduce/settings.py``
renders, and every ``saca-lab`` command line it shows parses with the real CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from saca_lab.cli import build_parser
from saca_lab.reproduce.settings import quick_mode_markdown

README = Path(__file__).resolve().parents[1] / "README.md"
SEPARATORS = {"&&", "&", ";", "||", "|"}


def readme_commands(text: str) -> list[str]:
    """Every ``saca-lab ...`` command in the README's bash blocks, continuation lines joined;
    commands chained with ``&&``, ``&`` or ``;`` are split apart."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True  # keep --set "a={b: c}" and paths as one token each
            part: list[str] = []
            for token in [*lexer, ";"]:
                if token in SEPARATORS:
                    if part and part[0] == "saca-lab":
                        commands.append(shlex.join(part))
                    part = []
                else:
                    part.append(token)
    return commands


def test_readme_quick_mode_block_is_rendered_from_settings():
    text = README.read_text()
    block = re.search(r"<!-- quick-mode:start -->\n(.*?)<!-- quick-mode:end -->", text, flags=re.S)
    assert block, "README.md has no <!-- quick-mode:start --> ... <!-- quick-mode:end --> block"
    assert block.group(1) == quick_mode_markdown(), (
        "README's quick-mode table differs from saca_lab/reproduce/settings.py; paste the output "
        "of `python -m saca_lab.reproduce.settings --markdown` between the markers")


def test_quick_mode_block_lists_every_difference():
    from dataclasses import fields

    from saca_lab.reproduce.settings import FULL, QUICK, Mode

    rendered = quick_mode_markdown()
    differing = [f.name for f in fields(Mode) if f.name != "name"
                 and getattr(QUICK, f.name) != getattr(FULL, f.name)]
    assert differing and all(f"| `{name}` |" in rendered for name in differing)
    assert "| `compare_sizes` |" not in rendered  # the same in both modes


def test_readme_commands_are_found():
    commands = readme_commands(README.read_text())
    verbs = {shlex.split(c)[1] for c in commands}
    # the README shows every verb; a regex that silently matched nothing would pass the next test
    assert {"simulate", "import", "info", "realism", "reproduce", "plot", "compare", "sweep",
            "models", "train", "predict"} <= verbs


def test_readme_commands_split_chains():
    text = "```bash\npip install x && saca-lab models\nsaca-lab info d & saca-lab info e &  # 2\n" \
           "saca-lab sweep run s.yaml \\\n    --set \"a={b: 1, c: 2}\"\n```\n"
    assert readme_commands(text) == ["saca-lab models", "saca-lab info d", "saca-lab info e",
                                     "saca-lab sweep run s.yaml --set 'a={b: 1, c: 2}'"]


@pytest.mark.parametrize("command", readme_commands(README.read_text()))
def test_readme_command_parses(command, capsys):
    parser = build_parser()
    try:
        parser.parse_args(shlex.split(command)[1:])
    except SystemExit as e:  # argparse exits 2 on an unknown flag or a missing argument
        pytest.fail(f"{command!r} does not parse: {capsys.readouterr().err.strip()} (exit {e.code})")
