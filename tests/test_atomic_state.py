"""JSON state and folders are written atomically and flushed to disk: a crash or a power cut
leaves the old version or the new one, never half of one."""

import os
import re
from pathlib import Path

import pytest

from wmpo_common.atomic_folder import atomic_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fsynced(monkeypatch):
    """The paths os.fsync is called on, in order."""
    paths = []
    real = os.fsync

    def spy(fd):
        paths.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return paths


def test_json_state_replaces_the_file_flushed_and_keeps_it_on_bad_data(tmp_path, fsynced):
    from wmpo_common.atomic_json import write_json

    state = tmp_path / "history.json"
    write_json(state, [{"iteration": 1}])
    inode = state.stat().st_ino
    write_json(state, [{"iteration": 1}, {"iteration": 2}])
    assert state.read_text().count("iteration") == 2
    assert state.stat().st_ino != inode  # a new file renamed into place, not rewritten in place
    assert tmp_path in fsynced and any(p.name.startswith(".history.json.") for p in fsynced)
    with pytest.raises(TypeError):
        write_json(state, {"not json": object()})
    assert state.read_text().count("iteration") == 2  # the old state is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]  # no temporary left


def test_atomic_folder_flushes_its_files_and_the_parent_folder(tmp_path, fsynced):
    with atomic_folder(tmp_path / "checkpoint") as folder:
        (folder / "weights.bin").write_bytes(b"w")
        (folder / "sub").mkdir()
        (folder / "sub" / "config.json").write_text("{}")
    names = {p.name for p in fsynced}
    assert {"weights.bin", "config.json"} <= names
    assert tmp_path in fsynced  # the rename itself is durable
    assert (tmp_path / "checkpoint" / "sub" / "config.json").read_text() == "{}"


def test_no_json_state_is_written_in_place():
    """Every JSON file is written through wmpo_common.atomic_json.write_json."""
    in_place = re.compile(r"write_text\(json\.dumps")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "src").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if in_place.search(line)
    ]
    assert not found, f"JSON written in place: {found}"
