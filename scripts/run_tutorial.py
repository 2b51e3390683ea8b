"""Runs the tutorial "Add your model in ten minutes" (docs/guides/add-your-model.md) word for word and times it.

    python scripts/run_tutorial.py [--out DIR] [--online] [--limit N]

It builds the wheel from this checkout, then runs every command of the guide's `bash` blocks, in order, in one
bash shell in a new empty folder (the guide's `modelsat-0.1.0-py3-none-any.whl` is the wheel just built; the
ports it names become free ones). `--offline` (the default) makes the new venv see this environment's
installed packages (torch, transformers, ...) through a path file and skips the guide's `pip install torch`
line, so nothing is downloaded; `--online` runs that line too, as a user would. The background servers the
guide starts are stopped at the end.

Prints each command with its time and the tail of its output, then the total, the time spent profiling (the
endpoint's own speed, with items per second) and the rest; writes the whole transcript to DIR/transcript.md.
Exits 1 when a command fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guides" / "add-your-model.md"
MARK = "__MODELSAT_TUTORIAL_DONE__"


def join_continuations(block_text: str) -> list[str]:
    lines, buf = [], ""
    for raw in block_text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        lines.append(buf + line)
        buf = ""
    return lines


def commands_of(text: str) -> list[str]:
    return [c for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S) for c in join_continuations(block)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_wheel(dest: Path) -> Path:
    src = dest / "src-copy"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(dest / "dist"), str(src)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"run_tutorial: the wheel did not build:\n{r.stderr[-2000:]}")
    shutil.rmtree(src)
    return next((dest / "dist").glob("modelsat-*.whl"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="folder for the transcript and the tutorial's files "
                                                           "(default: a new temporary folder)")
    ap.add_argument("--online", action="store_true", help="install the wheel's dependencies from the network "
                                                          "as a user would (default: from this environment)")
    ap.add_argument("--limit", type=int, default=None, help="profile N items in each profile command instead of "
                                                            "the guide's figure (a quick check of the commands; "
                                                            "not the tutorial's time)")
    args = ap.parse_args()
    work = (args.out or Path(tempfile.mkdtemp(prefix="modelsat-tutorial-"))).resolve()
    if work.exists() and any(work.iterdir()):   # a venv left there would keep an older modelsat installed
        ap.error(f"--out {work}: the folder is not empty; give a new one (the tutorial starts from nothing)")
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    wheel = build_wheel(work / "build")
    wheel_seconds = time.perf_counter() - t_start
    guide = GUIDE.read_text()
    ports = {p: str(free_port()) for p in sorted(set(re.findall(r"(?:127\.0\.0\.1:|--port )(\d{4})\b", guide)))}
    commands = []
    for c in commands_of(guide):
        for old, new in ports.items():
            c = re.sub(rf"(?<=[:\s]){old}\b", new, c)
        c = c.replace("modelsat-0.1.0-py3-none-any.whl", str(wheel))
        if c.startswith("pip install torch") and not args.online:
            continue
        if args.limit and c.startswith("modelsat profile"):
            c = re.sub(r" --limit \d+", "", c) + f" --limit {args.limit}"
        commands.append(c)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", COLUMNS="120", PYTHONUNBUFFERED="1")
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    env["MODELSAT_DATA"] = str(work / "no-data")     # a user has no data folder
    shell = subprocess.Popen(["bash"], cwd=work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
    transcript = [f"# The tutorial, run by scripts/run_tutorial.py ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
                  "", f"Wheel {wheel.name} built in {wheel_seconds:.1f} s.", ""]
    timings: list[tuple[str, float]] = []
    failed = False
    try:
        shell.stdin.write("set -o pipefail\n")
        for i, cmd in enumerate(commands):
            extra = ""
            if cmd.startswith("python -m venv") and not args.online:
                # the new venv sees this environment's packages, so pip finds every dependency installed
                extra = (f"\n echo {sysconfig.get_paths()['purelib']} > "
                         f"$(ls -d {cmd.split()[-1]}/lib/python3*/site-packages)/zz_deps.pth")
            shell.stdin.write(f"{cmd}{extra}\nprintf '\\n%s %d\\n' {MARK} $?\n")
            shell.stdin.flush()
            t0 = time.perf_counter()
            lines = []
            while True:
                line = shell.stdout.readline()
                if not line:
                    raise SystemExit("run_tutorial: the shell ended early")
                if line.startswith(MARK):
                    rc = int(line.split()[1])
                    if lines and not lines[-1]:
                        lines.pop()     # the newline printed before the mark
                    break
                lines.append(line.rstrip("\n"))
            dt = time.perf_counter() - t0
            timings.append((cmd, dt))
            shown = "\n".join(lines[-25:])
            print(f"$ {cmd}   [{dt:.1f} s, exit {rc}]\n{shown}\n", flush=True)
            transcript += ["```", f"$ {cmd}", *lines[-40:], "```", f"({dt:.1f} s, exit {rc})", ""]
            if rc != 0 and not cmd.startswith("until "):
                failed = True
                break
    finally:
        os.killpg(shell.pid, 15)
        for port in ports.values():      # the servers the guide started in the background
            subprocess.run(["pkill", "-f", "--", f"--port {port}"], check=False)
    total = time.perf_counter() - t_start
    prof = sum(dt for c, dt in timings if c.startswith("modelsat profile"))
    items = sum(1000 if "--limit" not in c else int(c.split("--limit")[1].split()[0])
                for c, _ in timings if c.startswith("modelsat profile"))
    summary = (f"total {total:.0f} s ({total / 60:.1f} min) on {os.cpu_count()} cores: profiling {prof:.0f} s "
               f"({items} items, {items / max(prof, 1e-9):.1f} items/s, the endpoint's own speed), everything else "
               f"{total - prof:.0f} s (the wheel {wheel_seconds:.0f} s)")
    print(summary)
    transcript += ["", summary, ""]
    (work / "transcript.md").write_text("\n".join(transcript))
    print(f"transcript: {work / 'transcript.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
