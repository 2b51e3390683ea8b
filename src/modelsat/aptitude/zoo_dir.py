"""A zoo directory: one profile JSON per model, all on one aptitude-test version. Adding a model copies its
profile in; nothing is retrained (the router reads profiles at call time).

The zoo's test is known when the folder holds `aptitude_test.json` (copied by `add(..., test=...)`) or
already holds profiles; a profile of another test version is refused.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from modelsat.aptitude.core_items import AptitudeTest, load_test
from modelsat.aptitude.from_records import profile_file_name
from modelsat.aptitude.profile import Profile
from modelsat.errors import ModelsatError

TEST_FILE = "aptitude_test.json"


def zoo_profiles(zoo: str | os.PathLike) -> list[Profile]:
    """The profiles in a zoo folder, by model name."""
    z = Path(zoo)
    if not z.is_dir():
        raise ModelsatError(f"{z}: no such zoo folder; add a profile first (modelsat zoo add PROFILE --zoo {z})")
    profs = [Profile.load(p) for p in sorted(z.glob("*.json")) if p.name != TEST_FILE]
    return sorted(profs, key=lambda p: p.model)


def zoo_test_version(zoo: str | os.PathLike) -> str | None:
    """The aptitude-test version of a zoo: its aptitude_test.json, else its profiles' (None when empty)."""
    z = Path(zoo)
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
    return dest
