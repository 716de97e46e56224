"""``make fixtures`` (tools/fixtures.py) and the fixture-folder lookup order."""

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from semcommon.testing import case_params, fixtures_dir, repo_root

ROOT = repo_root(Path(__file__))
TOOL = ROOT / "tools" / "fixtures.py"


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "fixtures"
    (src / "semstereo").mkdir(parents=True)
    (src / "semstereo" / "README.md").write_text("targets")
    (src / "ssp").mkdir()
    return src


def _install(source: Path, destination: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), str(source), str(destination)], capture_output=True, text=True)


def test_install_from_folder_and_archive(tmp_path):
    src = _source(tmp_path)
    dest = tmp_path / "repo" / ".fixtures"
    proc = _install(src, dest)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "semstereo" / "README.md").read_text() == "targets"
    assert "missing: clearscd" in proc.stdout
    archive = tmp_path / "fx.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="fixtures")  # one top-level folder: unwrapped
    (src / "semstereo" / "README.md").write_text("changed")
    proc = _install(archive, dest)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "semstereo" / "README.md").read_text() == "targets"
    assert not list(dest.parent.glob(".fixtures-tmp-*"))


def test_bad_sources_keep_the_old_copy(tmp_path):
    dest = tmp_path / ".fixtures"
    assert _install(_source(tmp_path), dest).returncode == 0
    proc = _install(tmp_path / "nothing.tgz", dest)
    assert proc.returncode == 1 and "nothing.tgz: no such file" in proc.stderr
    (tmp_path / "junk.tgz").write_bytes(b"not an archive")
    proc = _install(tmp_path / "junk.tgz", dest)
    assert proc.returncode == 1 and "neither a folder nor" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _install(empty, dest)
    assert proc.returncode == 1 and "none of the package folders" in proc.stderr
    assert (dest / "semstereo" / "README.md").is_file()


def test_lookup_order(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "shared").mkdir(parents=True)
    (repo / "packages").mkdir()
    monkeypatch.chdir(repo)
    monkeypatch.delenv("SEMVISION_FIXTURES", raising=False)
    sibling = tmp_path / "shared" / "fixtures" / "ssp"
    sibling.mkdir(parents=True)
    assert fixtures_dir("ssp") == sibling
    local = repo / ".fixtures" / "ssp"
    local.mkdir(parents=True)
    assert fixtures_dir("ssp") == local
    monkeypatch.setenv("SEMVISION_FIXTURES", str(tmp_path / "elsewhere"))
    assert fixtures_dir("ssp") == tmp_path / "elsewhere" / "ssp"


def test_parity_skip_is_explicit(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("SEMVISION_PARITY", "skip")
    [param] = case_params("semstereo")
    assert param.marks and "parity NOT checked" in param.marks[0].kwargs["reason"]
    monkeypatch.delenv("SEMVISION_PARITY")
    monkeypatch.setenv("SEMVISION_FIXTURES", "/no/such/folder")
    [param] = case_params("semstereo")
    assert not param.marks  # under CI=true a missing folder fails instead of skipping
    with pytest.raises(FileNotFoundError, match="make fixtures"):
        from semcommon.testing import load_case

        load_case(param.values[0])
