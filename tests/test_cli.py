"""The command line: every command has --help listing the documented parameters, the README documents
every command, and bad invocations end with one clear line (no traceback)."""
import os
import subprocess
import sys

import pytest

import fylrmig
from tests.helpers import ROOT, run_cli, run_cli_env

# parameters.md 2 and 3 (plus the aliases fylr accepted over time)
BACKUP_FLAGS = ["--server", "--login", "--password", "--client-id", "--client-secret", "--client-token-url",
                "--insecure", "--dir", "--purge", "--continue", "--verify", "--chunk-size", "--chunk",
                "--max-count", "--maximum-count", "--limit", "--include", "--all-versions", "--include-deleted",
                "--include-events", "--include-files", "--compression", "--pretty", "--max-parallel",
                "--retry-max-count", "--retry-sleep-between", "--log", "--verbose", "--log-network"]
RESTORE_FLAGS = ["--manifest", "--server", "--login", "--password", "--client-id", "--client-secret",
                 "--client-token-url", "--insecure", "--purge", "--continue", "--base-config", "--datamodel",
                 "--chunk-size", "--chunk", "--max-count", "--limit", "--max-parallel", "--skip-constraints",
                 "--skip-reindex", "--include-password", "--include-events", "--include-deleted-linked",
                 "--file-api", "--file-version", "--upload-versions", "--rename-versions",
                 "--file-api-access-token", "--upload-ignore-files-with-errors", "--max-parallel-upload-files",
                 "--timeout-min", "--log", "--verbose", "--verify", "--retry-max-count", "--retry-sleep-between"]
SERVE_FLAGS = ["--host", "--port", "--data"]


@pytest.mark.parametrize("command,flags", [("backup", BACKUP_FLAGS), ("restore", RESTORE_FLAGS),
                                           ("serve", SERVE_FLAGS)])
def test_help_lists_every_parameter(command, flags):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    for flag in flags:
        assert flag in result.stdout, f"{command} --help lacks {flag}"


def test_top_level_help_names_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("backup", "restore", "serve"):
        assert command in result.stdout


def test_readme_documents_every_command_and_the_two_first_screen_commands():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    first_screen = "\n".join(readme.splitlines()[:30])
    assert "pip install -e . && fylrmig serve" in first_screen
    assert "pip install -e '.[test]' && python -m pytest" in first_screen
    for command in fylrmig.COMMANDS:
        assert f"fylrmig {command}" in readme


def test_ci_runs_the_readme_test_command():
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert "pip install -e '.[test]' && python -m pytest" in ci


def test_boolean_flags_accept_three_spellings():
    parser = fylrmig.build_parser()
    base = ["backup", "--dir", "x"]
    assert parser.parse_args(base + ["--all-versions"]).all_versions is True
    assert parser.parse_args(base + ["--all-versions", "true"]).all_versions is True
    assert parser.parse_args(base + ["--all-versions=false"]).all_versions is False
    assert parser.parse_args(base + ["--chunk", "50"]).chunk_size == 50
    assert parser.parse_args(base + ["--limit", "7"]).max_count == 7


def test_secrets_are_masked_in_the_logged_command_line():
    argv = ["backup", "--server", "http://u:topsecret@h/api/v1", "--password", "hunter2", "--client-secret=s3",
            "-p", "pw2", "--file-api-access-token", "tok"]
    text = " ".join(fylrmig.masked_argv(argv))
    for secret in ("topsecret", "hunter2", "s3", "pw2", "tok"):
        assert secret not in text.split(), text
    assert "--password ***" in text and "--client-secret=***" in text


def test_missing_parameters_give_one_line(tmp_path):
    result = run_cli("backup", "--dir", str(tmp_path / "b"), "--data", str(tmp_path / "data"))
    assert result.returncode == 1
    assert result.stderr.strip() == "fylrmig: error: missing --server, --login, --password"
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_public_address_without_a_token(tmp_path):
    result = run_cli("serve", "--host", "0.0.0.0", "--data", str(tmp_path))
    assert result.returncode == 1
    assert "--access-token" in result.stderr and "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- secrets on the command line

SECRET = "Zq9-secret-value-77"


@pytest.mark.parametrize("spelling", [["--pass", SECRET], ["--passw=" + SECRET], ["-p" + SECRET], ["-p", SECRET],
                                      ["--password", SECRET]])
def test_every_spelling_argparse_accepts_for_a_password_is_masked_in_the_log(make_sim, tmp_path, spelling):
    server = make_sim("easydb5")
    server.sim.passwords["root"] = SECRET
    log = tmp_path / "b.log"
    result = run_cli("backup", "--server", server.api_url, "--login", "root", *spelling, "--dir", str(tmp_path / "b"),
                     "--data", str(tmp_path / "data"), "--log", str(log))
    assert result.returncode == 0, result.stderr
    for path in (log, tmp_path / "data" / "jobs.sqlite", tmp_path / "b" / "manifest.json"):
        assert SECRET.encode() not in path.read_bytes(), path
    assert "***" in log.read_text()


def test_abbreviated_client_secret_and_access_token_flags_are_masked():
    argv = ["restore", "--client-sec", SECRET, "--file-api-acc=" + SECRET, "--file-api-access", SECRET,
            "--url", "http://h/x?a=1&access_token%3D" + SECRET]
    assert SECRET not in " ".join(fylrmig.masked_argv(argv))


def test_a_misspelt_secret_flag_is_not_echoed_by_the_error(tmp_path):
    result = run_cli("backup", "--server", "http://h", "--login", "root", "--pasword", SECRET,
                     "--dir", str(tmp_path / "b"))
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr
    assert SECRET not in result.stderr and "Traceback" not in result.stderr


def test_the_password_can_come_from_the_environment(make_sim, tmp_path):
    server = make_sim("fylr")
    result = run_cli_env({"FYLRMIG_PASSWORD": "admin"}, "backup", "--server", server.api_url, "--login", "root",
                         "--dir", tmp_path / "b", "--data", tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert os.path.isfile(tmp_path / "b" / "manifest.json")


def test_serve_refuses_a_short_access_token(tmp_path):
    result = run_cli("serve", "--host", "0.0.0.0", "--access-token", "short", "--data", str(tmp_path))
    assert result.returncode == 1 and "at least 16 characters" in result.stderr


def run_on_a_terminal(argv):
    """fylrmig with its standard error on a pseudo terminal (as a person runs it): what that terminal got."""
    import pty
    import select
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fylrmig", *map(str, argv)], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
        elif proc.poll() is not None:
            break
    proc.wait()
    os.close(master)
    return proc.returncode, out.decode("utf-8", "replace")


def test_a_terminal_sees_one_live_line_per_phase_and_a_summary_and_quiet_silences_both(make_sim, tmp_path):
    server = make_sim("easydb5")
    argv = ["backup", "--server", server.api_url, "--login", "root", "--password", "admin", "--data", tmp_path / "d",
            "--log", tmp_path / "b.log", "--chunk-size", "5"]
    code, shown = run_on_a_terminal(argv + ["--dir", tmp_path / "b"])
    assert code == 0
    assert "\r\x1b[K" in shown and "db/bilder: " in shown and "/s, ETA" in shown
    assert "backup done in " in shown and "retries:" in shown and "  db/bilder: " in shown
    assert "\r" not in (tmp_path / "b.log").read_text()          # the log keeps its own lines only
    code, shown = run_on_a_terminal(argv + ["--dir", tmp_path / "q", "--quiet"])
    assert code == 0 and shown.strip() == ""
