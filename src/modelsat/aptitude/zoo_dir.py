"""A zoo directory: one profile JSON per model, all on one aptitude-test version. Adding a model copies its
profile in; nothing is retrained (the router reads profiles at call time).

The zoo's test is known when the folder holds `aptitude_test.json` (copied by `add(..., test=...)`) or
already holds profiles; a profile of another test version is refused.

`modelsat zoo init DIR` makes the folder one a proxy serves: an index (zoo.yaml) beside the profiles names each
model's endpoint and price (below, "the served zoo").
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from pathlib import Path

import yaml

from modelsat.aptitude.core_items import AptitudeTest, load_test
from modelsat.aptitude.from_records import profile_file_name
from modelsat.aptitude.profile import Profile, check_price
from modelsat.errors import ModelsatError
from modelsat.paths import read_yaml
from modelsat.files import atomic_path

TEST_FILE = "aptitude_test.json"


def zoo_profiles(zoo: str | os.PathLike) -> list[Profile]:
    """The profiles in a zoo folder, by model name."""
    z = Path(zoo)
    if not z.is_dir():
        raise ModelsatError(f"{z}: no such zoo folder; make one with: modelsat zoo init {z}")
    profs = [Profile.load(p) for p in sorted(z.glob("*.json")) if p.name != TEST_FILE]
    return sorted(profs, key=lambda p: p.model)


def zoo_test_version(zoo: str | os.PathLike) -> str | None:
    """The aptitude-test version of a zoo: its aptitude_test.json, else its profiles' (None when empty)."""
    z = Path(zoo)
    if is_indexed(z):
        return str(read_index(z).get("test_version"))
    if (z / TEST_FILE).exists():
        return load_test(z / TEST_FILE).version
    if not z.is_dir():
        return None
    versions = {p.test_version for p in zoo_profiles(z)}
    if len(versions) > 1:
        raise ModelsatError(f"{z}: profiles of several aptitude-test versions ({', '.join(sorted(versions))})")
    return versions.pop() if versions else None


def add_profile(profile_path: str | os.PathLike, zoo: str | os.PathLike, test: AptitudeTest | None = None,
                replace: bool = False) -> Path:
    """Copies a validated profile into the zoo; refuses a profile whose test version is not the zoo's."""
    prof = Profile.load(profile_path)
    z = Path(zoo)
    known = zoo_test_version(z)
    if test is not None:
        if prof.test_version != test.version:
            raise ModelsatError(f"{profile_path}: profile of {prof.model!r} is for aptitude test "
                                f"{prof.test_version}, not {test.version} (the test given)")
        if known is not None and known != test.version:
            raise ModelsatError(f"{z}: the zoo is on aptitude test {known}, not {test.version}")
    if known is not None and prof.test_version != known:
        raise ModelsatError(f"{profile_path}: profile of {prof.model!r} is for aptitude test {prof.test_version}, "
                            f"but zoo {z} uses test {known}; profile the model on the zoo's test "
                            f"(modelsat profile --test {z / TEST_FILE if (z / TEST_FILE).exists() else 'TEST'} ...)")
    dest = z / profile_file_name(prof.model)
    if dest.exists() and not replace:
        raise ModelsatError(f"{dest}: zoo {z} already has {prof.model!r}; pass --replace to overwrite it")
    z.mkdir(parents=True, exist_ok=True)
    if test is not None and not (z / TEST_FILE).exists():
        test.save(z / TEST_FILE)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(profile_path, tmp)
    os.replace(tmp, dest)
    if is_indexed(z):     # a zoo made by `zoo init`: the model joins its index too (no endpoint yet)
        with _locked(z):
            index = read_index(z)
            if prof.model not in [m["name"] for m in index["models"]]:
                index["models"].append({"name": prof.model, "profile": dest.name})
                _write_index(z, index)
    return dest


# ------------------------------------------------------------------------------------------- the served zoo
# A zoo folder made by `zoo init` also holds an index, zoo.yaml: the test version, each model's profile file,
# endpoint (base URL, upstream model name, the NAME of the environment variable with its key) and price, and an
# optional `serve:` mapping of the proxy's other config keys (auth, aliases, limits ...). A change is written
# profile first, index last (each atomically), so a reader of the index (a running `modelsat serve --zoo`)
# never sees a model whose profile is not in place.

INDEX_FILE = "zoo.yaml"
LOCK_FILE = ".zoo.lock"
DEFAULT_CLIENT_KEY_ENV = "MODELSAT_CLIENT_KEY"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL = re.compile(r"^https?://[^/\s@]+(/\S*)?$")


def default_test_version() -> str:
    """The shipped aptitude test's version: the one the shipped router's profiles were taken on."""
    from modelsat.aptitude.shipped import shipped_test
    return shipped_test().version


def is_indexed(zoo: str | os.PathLike) -> bool:
    """Whether the folder is a zoo made by `modelsat zoo init` (it holds zoo.yaml)."""
    return (Path(zoo) / INDEX_FILE).is_file()


def read_index(zoo: str | os.PathLike) -> dict:
    """The zoo's index (zoo.yaml) as a mapping with `test_version` and a `models` list; errors name the file."""
    z = Path(zoo)
    path = z / INDEX_FILE
    if not z.is_dir():
        raise ModelsatError(f"{z}: no such zoo folder; make one with: modelsat zoo init {z}")
    if not path.is_file():
        raise ModelsatError(f"{z}: not a zoo folder made by `modelsat zoo init` (no {INDEX_FILE}); make it one "
                            f"with: modelsat zoo init {z}")
    data = read_yaml(path, "zoo index")
    if not isinstance(data, dict) or not isinstance(data.get("models", []), list):
        raise ModelsatError(f"{path}: expected a mapping with `test_version` and a `models` list")
    data.setdefault("models", [])
    data["models"] = [m for m in data["models"] if m is not None]
    for i, m in enumerate(data["models"]):
        if not isinstance(m, dict) or not m.get("name"):
            raise ModelsatError(f"{path}: models[{i}] is not a mapping with a `name`")
    return data


def _write_index(zoo: Path, index: dict) -> Path:
    path = zoo / INDEX_FILE
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("# The zoo's index, kept by `modelsat zoo add|remove`; `modelsat serve --zoo` reads it (and\n"
                "# takes in a change while serving). Secrets never go here: api_key_env names a variable.\n")
        yaml.safe_dump(index, f, sort_keys=False, allow_unicode=True)
    return path


@contextlib.contextmanager
def _locked(zoo: Path):
    """One `zoo add|remove` at a time on a folder (two at once would each write the index without the other's)."""
    import fcntl
    with open(zoo / LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def init_zoo(zoo: str | os.PathLike, test: AptitudeTest | None = None, name: str | None = None) -> Path:
    """Makes `zoo` a zoo folder (writes zoo.yaml) on `test` (default: the shipped test). Profiles already in the
    folder are indexed (without an endpoint until `zoo add --replace` gives one). Returns the index's path."""
    z = Path(zoo)
    if is_indexed(z):
        raise ModelsatError(f"{z}: already a zoo folder ({INDEX_FILE} exists); add models with: "
                            f"modelsat zoo add {z} PROFILE.json --base-url URL --price IN[,OUT]")
    if z.exists() and not z.is_dir():
        raise ModelsatError(f"{z}: exists and is not a folder")
    version = test.version if test is not None else default_test_version()
    existing = zoo_profiles(z) if z.is_dir() else []
    for p in existing:
        if p.test_version != version:
            raise ModelsatError(f"{z}: holds a profile of {p.model!r} taken on aptitude test {p.test_version}, "
                                f"not {version}; move it away or pass --test with its test")
    z.mkdir(parents=True, exist_ok=True)
    if test is not None and not (z / TEST_FILE).exists():
        test.save(z / TEST_FILE)
    index = {"name": name or z.resolve().name, "test_version": version,
             "models": [{"name": p.model, "profile": profile_file_name(p.model)} for p in existing],
             "serve": {"auth": {"client_keys_env": [DEFAULT_CLIENT_KEY_ENV]}}}
    return _write_index(z, index)


def parse_price(text: str) -> dict:
    """`IN[,OUT]` USD per million tokens as {input, output} (one figure: both); refuses negatives and non-numbers."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (1, 2) or not all(parts):
        raise ModelsatError(f"--price {text!r}: expected IN or IN,OUT in USD per million tokens, e.g. 0.2 or 0.15,0.6")
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ModelsatError(f"--price {text!r}: {p!r} is not a number; give USD per million tokens, "
                                "e.g. 0.2 or 0.15,0.6") from None
        if not math.isfinite(v) or v < 0:
            raise ModelsatError(f"--price {text!r}: {p} is not a price (a finite number >= 0)")
        values.append(v)
    return {"input": values[0], "output": values[-1]}


def refuse_other_version(prof: Profile, where: str, zoo: Path, version: str) -> None:
    """Refuses a profile not taken on the zoo's aptitude test, saying which and how to take it again."""
    if prof.test_version == version:
        return
    test_opt = f" --test {zoo / TEST_FILE}" if (zoo / TEST_FILE).exists() else ""
    shipped = " (the shipped test, the one the shipped router reads; `modelsat aptitude show`)" if not test_opt else ""
    raise ModelsatError(f"{where}: profile of {prof.model!r} was taken on aptitude test {prof.test_version}, but zoo "
                        f"{zoo} is on test {version}{shipped}; profile the model again on it: modelsat profile "
                        f"--endpoint URL --model {prof.model}{test_opt} --out {profile_file_name(prof.model)}")


def add_model(zoo: str | os.PathLike, profile_path: str | os.PathLike, base_url: str | None,
              price: dict | None = None, api_key_env: str | None = None, upstream_model: str | None = None,
              replace: bool = False) -> dict:
    """Adds a model to an indexed zoo: its profile copied in, its endpoint and price in the index. Returns its
    index entry. Refuses a profile of another test version, a bad URL, a key given instead of a variable name."""
    z = Path(zoo)
    index = read_index(z)
    prof = Profile.load(profile_path)
    refuse_other_version(prof, str(profile_path), z, str(index.get("test_version")))
    if base_url is not None and not _URL.match(base_url):
        raise ModelsatError(f"--base-url {base_url!r}: expected an http:// or https:// URL with a host and no "
                            "credentials, e.g. http://127.0.0.1:8001/v1 (a key goes in --api-key-env)")
    if api_key_env is not None and not _ENV_NAME.match(api_key_env):
        raise ModelsatError("--api-key-env: expected the NAME of an environment variable (letters, digits, _), "
                            "never the key itself")
    if price is not None:
        check_price(price, "--price")
    entry = {"name": prof.model, "profile": profile_file_name(prof.model)}
    entry.update({k: v for k, v in (("base_url", base_url.rstrip("/") if base_url else None),
                                    ("upstream_model", upstream_model), ("api_key_env", api_key_env),
                                    ("price", price)) if v is not None})
    with _locked(z):
        index = read_index(z)
        names = [m["name"] for m in index["models"]]
        if prof.model in names and not replace:
            raise ModelsatError(f"{z}: the zoo already has {prof.model!r}; pass --replace to change it, or remove it "
                                f"first: modelsat zoo remove {z} {prof.model}")
        dest = z / entry["profile"]
        if Path(profile_path).resolve() != dest.resolve():
            with atomic_path(dest) as tmp:
                shutil.copyfile(profile_path, tmp)
        if prof.model in names:
            index["models"][names.index(prof.model)] = entry
        else:
            index["models"].append(entry)
        _write_index(z, index)
    return entry


def remove_model(zoo: str | os.PathLike, name: str) -> dict:
    """Takes a model out of an indexed zoo (index first, then its profile file). Returns its old entry."""
    z = Path(zoo)
    with _locked(z) if z.is_dir() else contextlib.nullcontext():
        index = read_index(z)
        names = [m["name"] for m in index["models"]]
        if name not in names:
            raise ModelsatError(f"{z}: no model {name!r} in the zoo; its models: {', '.join(names) or 'none'}")
        entry = index["models"].pop(names.index(name))
        _write_index(z, index)
        profile = z / str(entry.get("profile") or profile_file_name(name))
        if profile.is_file() and profile.parent.resolve() == z.resolve():
            profile.unlink()
    return entry


def index_entries(zoo: str | os.PathLike) -> list[tuple[dict, Profile | None, str | None]]:
    """(entry, profile or None, problem or None) for each model of an indexed zoo, in the index's order."""
    z = Path(zoo)
    index = read_index(z)
    out = []
    for m in index["models"]:
        path = z / str(m.get("profile") or profile_file_name(m["name"]))
        try:
            prof = Profile.load(path)
            problem = None if prof.test_version == index.get("test_version") else \
                f"taken on aptitude test {prof.test_version}, not the zoo's {index.get('test_version')}"
        except ModelsatError as exc:
            prof, problem = None, str(exc)
        out.append((m, prof, problem))
    return out
