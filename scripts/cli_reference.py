"""Writes the command-line reference, docs/reference/cli.md, from the `modelsat` command tree itself: an index of
every command, then for each its summary, its full help, a usage line and a table of its arguments and options.

    python scripts/cli_reference.py            # write the page
    python scripts/cli_reference.py --check    # exit 1 with one line when the page is not what it would write

Only the command tree is built (typer's click command); no model, data or router is loaded, so it takes about a
second. tests/test_cli_reference.py runs the check, so the page cannot fall behind the commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import typer.main

from modelsat.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reference" / "cli.md"
PROG = "modelsat"
# Top-level commands in the order a user meets them; one not named here follows, in the command's own order.
ORDER = ("data", "aptitude", "profile", "zoo", "route", "train", "benchmark", "evaluate", "serve", "validate")
INTRO = """\
# Command line

`modelsat` is a thin typer layer over the package; every command prints its own help with `--help`, which is
authoritative where this page and the installed version differ. Usage mistakes exit with status 2 and one
`error:` line; the data folder is `--data-dir`, then `$MODELSAT_DATA`, then `../shared/data` beside the
checkout.

This page is written from the commands themselves by `python scripts/cli_reference.py`; a test fails when it
falls behind them, so change a command's help in its code, then rerun the script.
"""
TYPE_NAMES = {"str": "text", "int": "integer", "float": "number", "path": "path", "bool": "flag"}


def leaf_commands(group, ctx, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], object, object]]:
    """(words after `modelsat`, command, its context) for every command that runs, groups walked recursively."""
    names = group.list_commands(ctx)
    if not path:
        names = [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]
    out = []
    for name in names:
        cmd = group.commands[name]
        if cmd.hidden:
            continue
        sub_ctx = cmd.make_context(name, [], parent=ctx, resilient_parsing=True)
        if hasattr(cmd, "commands"):
            out += leaf_commands(cmd, sub_ctx, (*path, name))
        else:
            out.append(((*path, name), cmd, sub_ctx))
    return out


def paragraphs(text: str | None) -> list[str]:
    """The help text's paragraphs, each on one line (the code wraps them for the terminal)."""
    blocks = (text or "").strip().split("\n\n")
    return [" ".join(line.strip() for line in b.splitlines()) for b in blocks if b.strip()]


def is_option(param) -> bool:
    return param.param_type_name == "option"


def argument_name(param) -> str:
    return param.metavar or param.name.upper()


def param_names(param) -> str:
    """`--out, -o`, `--cache / --no-cache`, or an argument's upper-case name."""
    if not is_option(param):
        return argument_name(param) + ("..." if param.nargs != 1 else "")
    names = ", ".join(param.opts)
    return f"{names} / {', '.join(param.secondary_opts)}" if param.secondary_opts else names


def number_range(param) -> str:
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        return f" from {low} to {high}"
    return f" ≥ {low}" if low is not None else (f" ≤ {high}" if high is not None else "")


def type_text(param, ctx) -> str:
    """What the parameter takes, in words: text, integer ≥ 1, path (repeatable), one of: a, b ..."""
    if is_option(param) and param.is_flag:
        return "flag"
    label = param.display_type(ctx).strip("<>")
    if label.startswith("list[") and label.endswith("]"):
        label = label[len("list["):-1]
    if "|" in label:
        text = "one of: " + ", ".join(label.split("|"))
    else:
        base = label.removesuffix(" range")
        text = TYPE_NAMES.get(base.lower(), base.lower()) + (number_range(param) if base != label else "")
    if param.metavar:
        text = f"{param.metavar} ({text})"
    if getattr(param, "multiple", False):
        text += ", repeatable"
    elif param.nargs == -1:
        text += ", one or more" if param.required else ", any number"
    return text


def default_text(param) -> str:
    """`required`, `—` for none, on/off for a --x/--no-x pair, else the value as typed on the command line."""
    if param.required:
        return "required"
    value = param.default
    if is_option(param) and param.is_flag:
        return ("on" if value else "off") if param.secondary_opts else "—"
    if value is None or value == [] or value == ():
        return "—"
    if isinstance(value, (list, tuple)):
        return ", ".join(f"`{getattr(v, 'value', v)}`" for v in value)
    return f"`{getattr(value, 'value', value)}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def usage(words: tuple[str, ...], cmd) -> str:
    """`modelsat zoo add PATHS... [OPTIONS]`: arguments in order (optional ones in brackets), then options."""
    pieces = [PROG, *words]
    for p in cmd.params:
        if not is_option(p) and not p.hidden:
            name = param_names(p)
            pieces.append(name if p.required else f"[{name}]")
    if any(is_option(p) and not p.hidden for p in cmd.params):
        pieces.append("[OPTIONS]")
    return " ".join(pieces)


def anchor(words: tuple[str, ...]) -> str:
    return "-".join((PROG, *words))


def section(words: tuple[str, ...], cmd, ctx) -> str:
    title = " ".join((PROG, *words))
    lines = [f"## `{title}` {{#{anchor(words)}}}", ""]
    for para in paragraphs(cmd.help):
        lines += [para, ""]
    lines += ["```text", usage(words, cmd), "```", ""]
    params = [p for p in cmd.params if not p.hidden]
    if params:
        lines += ["| argument / option | takes | default | meaning |", "|---|---|---|---|"]
        for p in params:
            lines.append(f"| `{param_names(p)}` | {cell(type_text(p, ctx))} | {cell(default_text(p))} | "
                         f"{cell(' '.join(paragraphs(getattr(p, 'help', None))))} |")
        lines.append("")
    return "\n".join(lines)


def render() -> str:
    """The whole page, as the command tree says it today."""
    root = typer.main.get_command(app)
    ctx = root.make_context(PROG, [], resilient_parsing=True)
    commands = leaf_commands(root, ctx, ())
    index = ["| command | what it does |", "|---|---|"]
    for words, cmd, _ in commands:
        summary = (paragraphs(cmd.help) or [""])[0]
        index.append(f"| [`{' '.join((PROG, *words))}`](#{anchor(words)}) | {cell(summary)} |")
    body = [section(words, cmd, sub_ctx) for words, cmd, sub_ctx in commands]
    return INTRO + "\n" + "\n".join(index) + "\n\n" + "\n".join(body).rstrip("\n") + "\n"


def stale_message(page: Path = PAGE) -> str | None:
    """None when `page` is what `render()` writes, else one line naming the first line that differs."""
    want = render()
    have = page.read_text() if page.is_file() else ""
    if have == want:
        return None
    where = next((i for i, (a, b) in enumerate(zip(have.splitlines(), want.splitlines())) if a != b),
                 min(len(have.splitlines()), len(want.splitlines())))
    rel = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
    return (f"{rel} is out of date with the commands (it differs from line {where + 1} on); "
            f"rewrite it with: python scripts/cli_reference.py")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 when the page is out of date")
    args = ap.parse_args(argv)
    if args.check:
        message = stale_message()
        if message:
            print(message, file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(render())
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
