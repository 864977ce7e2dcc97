"""The single file to copy: `fylrmig bundle` writes a zipapp that runs where only Python is installed
(tested with `python3 -I -S`: no site-packages at all), and fylrmig.py copied alone says what it lacks."""
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.helpers import ROOT, free_port, run_cli


def isolated(folder, *argv, timeout=180):
    """python3 -I -S: isolated, no site-packages, run from an empty folder."""
    return subprocess.run([sys.executable, "-I", "-S", *map(str, argv)], cwd=folder, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    built = tmp_path_factory.mktemp("build") / "fylrmig.pyz"
    result = run_cli("bundle", built, timeout=120)
    assert result.returncode == 0, result.stderr
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    shutil.copy(built, elsewhere)
    return elsewhere / "fylrmig.pyz"


def test_the_bundle_answers_help_in_an_isolated_python(bundle):
    result = isolated(bundle.parent, bundle, "--help")
    assert result.returncode == 0 and "backup" in result.stdout and "bundle" in result.stdout
    assert isolated(bundle.parent, bundle, "restore", "--help").returncode == 0


def test_the_bundle_serves_the_page(bundle):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-I", "-S", str(bundle), "serve", "--port", str(port), "--data",
                               str(bundle.parent / "data")], cwd=bundle.parent, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        deadline, page = time.monotonic() + 30, None
        while time.monotonic() < deadline and page is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/inspect/migration/", timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
        assert page and "Name of backup" in page and "Restore" in page
    finally:
        server.terminate()
        server.wait(10)


def test_the_bundle_backs_up_and_restores_a_tiny_instance(bundle, make_sim):
    source, target = make_sim("easydb5"), make_sim("fylr", size="empty")
    common = ["--login", "root", "--password", "admin", "--data", bundle.parent / "data", "--retry-sleep-between", "0"]
    backup = isolated(bundle.parent, bundle, "backup", "--server", source.api_url, "--dir", bundle.parent / "b",
                      "--all-versions", *common)
    assert backup.returncode == 0, backup.stderr
    restore = isolated(bundle.parent, bundle, "restore", "--manifest", bundle.parent / "b" / "manifest.json",
                       "--server", target.api_url, "--purge", "--file-api", "rput", *common)
    assert restore.returncode == 0, restore.stderr
    assert len(target.sim.sysids) == len(source.sim.sysids)
    assert all(f.get("status", "done") == "done" for f in target.sim.files.values()) and target.sim.files


def test_fylrmig_py_copied_alone_says_in_one_line_what_it_lacks(tmp_path):
    shutil.copy(os.path.join(ROOT, "fylrmig.py"), tmp_path)
    result = isolated(tmp_path, "fylrmig.py", "serve")                      # no packages at all
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr
    assert "package bottle is missing" in lines[0] and "fylrmig bundle" in lines[0]
    with_packages = subprocess.run([sys.executable, "fylrmig.py", "backup", "--verify", "--dir", "x", "--data", "d"],
                                   cwd=tmp_path, capture_output=True, text=True, timeout=60)   # site-packages, no resources
    lines = with_packages.stderr.strip().splitlines()
    assert with_packages.returncode == 1 and len(lines) == 1 and "Traceback" not in with_packages.stderr
    assert re.search(r"jobs\.sqlite\.sql is missing beside .*fylrmig\.py: copy fylrmig\.py together", lines[0])
