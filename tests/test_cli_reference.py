"""docs/reference/cli.md is what scripts/cli_reference.py writes from the command tree today: a command, option or
help text changed without rerunning the script fails here, with the command that rewrites the page."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "cli_reference.py"


def cli_reference():
    spec = importlib.util.spec_from_file_location("cli_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_page_is_what_the_commands_say_today():
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_stale_page_is_named_in_one_line_with_the_command_that_rewrites_it(tmp_path):
    ref = cli_reference()
    lines = ref.render().splitlines()
    n = next(i for i, line in enumerate(lines) if line.startswith("| `--workers, -w` |"))
    lines[n] = lines[n].replace("`--workers, -w`", "`--workers`")
    page = tmp_path / "cli.md"
    page.write_text("\n".join(lines) + "\n")
    message = ref.stale_message(page)
    assert message is not None and "\n" not in message
    assert f"from line {n + 1} on" in message and "python scripts/cli_reference.py" in message


def test_every_command_has_an_anchored_section_and_an_index_row():
    ref = cli_reference()
    page = ref.render()
    for words in (("zoo", "init"), ("zoo", "add"), ("zoo", "remove"), ("zoo", "list"), ("serve",), ("train",)):
        anchor = "-".join(("modelsat", *words))
        assert f"{{#{anchor}}}" in page and f"](#{anchor})" in page
