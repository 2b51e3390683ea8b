"""How much the command line lets third-party libraries say: `--log-level`, quiet by default.

transformers, sentence-transformers and huggingface_hub print "Loading weights" bars (tqdm) and warnings on
every model load; a user who asked which model to use wants none of that. The environment variables are set
before those libraries are imported (commands import them lazily), so their own defaults read them.
"""

from __future__ import annotations

import logging
import os
import warnings
from enum import Enum

import typer

THIRD_PARTY = ("transformers", "sentence_transformers", "huggingface_hub", "accelerate", "peft", "torch",
               "httpx", "uvicorn", "uvicorn.error", "uvicorn.access")


class LogLevel(str, Enum):
    quiet = "quiet"
    warning = "warning"
    info = "info"
    debug = "debug"


LOG_LEVEL_HELP = ("How much libraries may print: quiet (errors only, no third-party progress bars or warnings), "
                  "warning, info or debug.")


def log_level_option() -> LogLevel:
    """The one `--log-level` option, shared by the commands that load models or serve."""
    return typer.Option(LogLevel.quiet, "--log-level", help=LOG_LEVEL_HELP, case_sensitive=False)


def quiet_by_default() -> None:
    """Before any command runs: third-party bars and warnings off unless the user's environment says otherwise."""
    for name, value in (("TQDM_DISABLE", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                        ("TRANSFORMERS_VERBOSITY", "error"), ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
                        ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(name, value)
    set_log_level(LogLevel.quiet, env=False)


def set_log_level(level: LogLevel | str, env: bool = True) -> None:
    """Applies `level` to Python logging, warnings and (with `env`) the libraries' environment switches."""
    level = LogLevel(level)
    quiet = level is LogLevel.quiet
    if env:
        if quiet:
            os.environ["TQDM_DISABLE"] = "1"
        else:
            os.environ.pop("TQDM_DISABLE", None)
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1" if quiet else "0"
        os.environ["TRANSFORMERS_VERBOSITY"] = "error" if quiet else level.value
    python_level = {LogLevel.quiet: logging.ERROR, LogLevel.warning: logging.WARNING,
                    LogLevel.info: logging.INFO, LogLevel.debug: logging.DEBUG}[level]
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(python_level)
    if quiet:
        warnings.filterwarnings("ignore")
    else:
        warnings.resetwarnings()
        logging.basicConfig(level=python_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def uvicorn_level(level: LogLevel | str) -> str:
    """uvicorn's log level for ours: quiet keeps its errors only (no access log)."""
    level = LogLevel(level)
    return "error" if level is LogLevel.quiet else level.value
