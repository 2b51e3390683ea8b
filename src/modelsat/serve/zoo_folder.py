"""A zoo folder (`modelsat zoo init|add|remove`) as the proxy's config, and the watch through which a running
`modelsat serve --zoo DIR` takes in a model added or removed.

The folder's index, zoo.yaml, gives the models (profile, endpoint, price, key variable name); its optional
`serve:` mapping gives any other key of the serve config (auth, aliases, limits, deadlines, router ...). The
router defaults to the shipped one, which reads profiles taken on the shipped aptitude test only.

Reload: the proxy checks the index's identity (inode, size, modification time) every second; `zoo add` and
`zoo remove` replace the index atomically after the profile is in place, so a change is seen whole.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelsat.aptitude.profile import Profile
from modelsat.aptitude.zoo_dir import DEFAULT_CLIENT_KEY_ENV, INDEX_FILE, index_entries, read_index
from modelsat.errors import ModelsatError
from modelsat.serve.config import ServeConfig, parse_config

MODEL_KEYS = ("name", "base_url", "upstream_model", "api_key_env", "profile", "price", "timeouts")


def shipped_router_folder() -> Path:
    from modelsat.routers.modelsat.router import shipped_router_dir
    return shipped_router_dir()


def zoo_folder_config(folder: str | os.PathLike) -> ServeConfig:
    """The serve config of a zoo folder: its models, the shipped router unless `serve.router` names another,
    client keys from $MODELSAT_CLIENT_KEY unless `serve.auth` says otherwise. Errors name the model and say
    what to type."""
    z = Path(folder)
    index = read_index(z)
    where = f"zoo {z}"
    if not index["models"]:
        raise ModelsatError(f"{where}: no model yet; add one: modelsat zoo add {z} PROFILE.json --base-url URL "
                            "--price IN[,OUT]")
    problems = []
    for m, prof, problem in index_entries(z):
        if problem:
            problems.append(f"{m['name']}: {problem}")
        elif not m.get("base_url"):
            problems.append(f"{m['name']}: no endpoint; give one: modelsat zoo add {z} {z / m['profile']} "
                            "--base-url URL --price IN[,OUT] --replace")
    if problems:
        raise ModelsatError(f"{where}: {len(problems)} model(s) cannot be served: " + "; ".join(problems))
    serve = index.get("serve") or {}
    if not isinstance(serve, dict) or "models" in serve:
        raise ModelsatError(f"{z / INDEX_FILE}: `serve` must be a mapping of serve-config keys other than models "
                            "(auth, aliases, limits, deadlines, router ...)")
    data = dict(serve)
    data.setdefault("router", str(shipped_router_folder()))
    data.setdefault("auth", {"client_keys_env": [DEFAULT_CLIENT_KEY_ENV]})
    data["models"] = [{k: m[k] for k in MODEL_KEYS if m.get(k) is not None} for m in index["models"]]
    cfg = parse_config(data, source=str(z / INDEX_FILE), base_dir=z.resolve())
    if cfg.router is not None and cfg.router.resolve() == shipped_router_folder().resolve():
        from modelsat.aptitude.shipped import check_profile_version, shipped_test
        version = shipped_test().version
        for m in cfg.models:
            check_profile_version(Profile.load(m.profile), version, where=where)
    return cfg


class ZooFolderWatch:
    """Whether a zoo folder's index changed since the last look, and its config (app.ZooWatch)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.where = str(self.folder)
        self._seen = self._identity()       # taken before the first load, so no change between them is missed

    def _identity(self):
        try:
            st = os.stat(self.folder / INDEX_FILE)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def changed(self) -> bool:
        now = self._identity()
        if now == self._seen:
            return False
        self._seen = now
        return True

    def load(self) -> ServeConfig:
        return zoo_folder_config(self.folder)


def zoo_folder_app(folder: str | os.PathLike, environ=None):
    """The proxy serving a zoo folder and taking in its changes (what each `--workers` process builds)."""
    from modelsat.serve.app import make_app
    watch = ZooFolderWatch(folder)
    return make_app(watch.load(), environ=environ, watch=watch)
