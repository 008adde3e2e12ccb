"""upload_files.py end to end against the local workspace: Files API (volumes, workspace files) and DBFS blocks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_fixtures import KNOWN_TOKEN, NO_CONFIG, api_requests, count, reset_log, sdk, write_requests
from helpers import SCRIPTS, assert_one_line_error, run_script, script_env

VOLUME = "/Volumes/main/default/libs/wheels"
WORKSPACE = "/Workspace/Shared/app/libs"
DBFS = "dbfs:/FileStore/app/wheels"


def upload(env, *args):
    return run_script("upload_files.py", *map(str, args), env=env, cwd=NO_CONFIG, timeout=120)


def ok(result) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "dist"
    folder.mkdir()
    big = folder / "big-1.0-py3-none-any.whl"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 12345))  # > 3 MB: four DBFS blocks
    small = folder / "small-1.0-py3-none-any.whl"
    small.write_bytes(b"PK\x03\x04 small wheel")
    return [big, small]


def remote_bytes(workspace, destination: str, name: str) -> bytes:
    w = sdk(workspace)
    if destination.startswith("dbfs:"):
        return w.dbfs.download(f"{destination[len('dbfs:') :]}/{name}").read()
    return w.files.download(f"{destination}/{name}").contents.read()


@pytest.mark.parametrize("destination", [VOLUME, WORKSPACE, DBFS])
def test_upload_then_skip_same_hash_then_replace_changed(deploy_workspace, deploy_env, files, destination) -> None:
    first = upload(deploy_env, destination, *files)
    ok(first)
    for path in files:
        assert remote_bytes(deploy_workspace, destination, path.name) == path.read_bytes()
    if destination.startswith("dbfs:"):
        assert count(deploy_workspace, "POST", "/dbfs/add-block") == 4 + 1
        assert count(deploy_workspace, "POST", "/dbfs/create") == 2
    else:
        assert count(deploy_workspace, "PUT", f"/fs/files{destination}/{files[0].name}") == 1
    assert "2 changed" in first.stdout

    reset_log(deploy_workspace)
    second = upload(deploy_env, destination, *files)
    ok(second)
    assert write_requests(deploy_workspace) == []
    assert second.stdout.count("same SHA-256") == 2

    files[1].write_bytes(files[1].read_bytes().replace(b"small", b"SMALL"))  # same size, other bytes
    reset_log(deploy_workspace)
    third = upload(deploy_env, destination, *files)
    ok(third)
    assert "content differs" in third.stdout and "1 changed, 1 unchanged" in third.stdout
    assert remote_bytes(deploy_workspace, destination, files[1].name) == files[1].read_bytes()


def test_many_unchanged_files_are_counted_not_listed_unless_verbose(deploy_workspace, deploy_env, tmp_path) -> None:
    many = []
    for number in range(14):
        many.append(tmp_path / f"pkg{number:02}-1.0-py3-none-any.whl")
        many[-1].write_bytes(b"PK\x03\x04 wheel %d" % number)
    ok(upload(deploy_env, VOLUME, *many))
    again = upload(deploy_env, VOLUME, *many)
    ok(again)
    assert "0 changed, 14 unchanged" in again.stdout
    assert again.stdout.count("  unchanged: ") == 5 + 1 and "... and 9 more (all listed with --verbose)" in again.stdout
    verbose = upload(deploy_env, VOLUME, *many, "--verbose")
    ok(verbose)
    assert (
        all(f"  unchanged: {VOLUME}/{path.name}" in verbose.stdout for path in many) and "more (" not in verbose.stdout
    )


def test_dry_run_writes_nothing(deploy_workspace, deploy_env, files) -> None:
    result = upload(deploy_env, VOLUME, *files, "--dry-run")
    ok(result)
    assert "would change" in result.stdout
    assert write_requests(deploy_workspace) == []


@pytest.mark.parametrize(
    "destination, message",
    [
        ("/Volumes/main/default", "not inside a volume"),
        ("/Volumes/main/default/libs/../x", "'..'"),
        ("/Workspace/Repos/me/x", "Repos"),
        ("/tmp/wheels", "outside the allowed roots"),
        ("dbfs:/", "DBFS root"),
    ],
)
def test_bad_destination_is_refused_without_calls(deploy_workspace, deploy_env, files, destination, message) -> None:
    assert_one_line_error(upload(deploy_env, destination, *files), code=2, contains=message)
    assert api_requests(deploy_workspace) == []


def test_missing_or_unreadable_file_is_refused_without_calls(deploy_workspace, deploy_env, files, tmp_path) -> None:
    assert_one_line_error(
        upload(deploy_env, VOLUME, files[0], tmp_path / "nope.whl"), code=2, contains="does not exist"
    )
    assert_one_line_error(upload(deploy_env, VOLUME, tmp_path), code=2, contains="is a folder")
    if os.path.isfile("/proc/self/mem"):  # a regular file no one (root included) can read
        assert_one_line_error(upload(deploy_env, VOLUME, files[0], "/proc/self/mem"), code=2, contains="cannot read")
    assert api_requests(deploy_workspace) == []


@pytest.mark.parametrize("destination", [VOLUME, DBFS])
def test_file_linking_outside_its_folder_is_refused_and_nothing_is_uploaded(
    deploy_workspace, deploy_env, files, tmp_path, destination
) -> None:
    secret = tmp_path / "home" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    link = files[0].parent / "zz-1.0-py3-none-any.whl"  # what dist/*.whl picks up, after two good files
    link.symlink_to(secret)
    result = upload(deploy_env, destination, *files, link)
    assert_one_line_error(
        result,
        code=2,
        contains=(
            f"error: {link} is a symlink to {secret}, outside {link.parent} "
            f"(replace the link with the file, or move its target inside {link.parent})"
        ),
    )
    assert api_requests(deploy_workspace) == []  # the good files before it were not uploaded either


def test_file_linking_inside_its_folder_uploads_the_targets_bytes_under_the_links_name(
    deploy_workspace, deploy_env, files
) -> None:
    link = files[1].parent / "latest.whl"
    link.symlink_to(files[1].name)
    ok(upload(deploy_env, VOLUME, link))
    assert remote_bytes(deploy_workspace, VOLUME, "latest.whl") == files[1].read_bytes()


def test_file_argument_that_is_a_link_loop_or_dangling_is_refused(deploy_workspace, deploy_env, files) -> None:
    folder = files[0].parent
    (folder / "a.whl").symlink_to("b.whl")
    (folder / "b.whl").symlink_to("a.whl")
    (folder / "gone.whl").symlink_to("missing.whl")
    assert_one_line_error(
        upload(deploy_env, VOLUME, folder / "a.whl"),
        code=2,
        contains=f"error: {folder}/a.whl is a symlink loop ({folder}/a.whl -> b.whl -> a.whl)",
    )
    assert_one_line_error(
        upload(deploy_env, VOLUME, folder / "gone.whl"),
        code=2,
        contains=f"error: {folder}/gone.whl is a symlink to {folder}/missing.whl, which does not exist",
    )
    assert api_requests(deploy_workspace) == []


def test_missing_token_wrong_host_and_leaks(deploy_workspace, deploy_env, files, tmp_path) -> None:
    no_token = script_env(DATABRICKS_HOST=deploy_workspace.url, DATABRICKS_AUTH_TYPE="pat")
    assert_one_line_error(upload(no_token, VOLUME, *files), code=2, contains="DATABRICKS_TOKEN")
    env = dict(deploy_env, TF_BUILD="True")
    results = [
        upload(env, DBFS, *files),
        upload(dict(env, DATABRICKS_TOKEN=KNOWN_TOKEN + "x"), VOLUME, *files),
        upload(dict(env, DATABRICKS_HOST="http://127.0.0.1:9"), VOLUME, *files),
    ]
    assert [r.returncode for r in results] == [0, 1, 1]
    assert_one_line_error(results[2], code=1, contains="127.0.0.1:9")
    for result in results:
        assert KNOWN_TOKEN not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".whl":
            assert KNOWN_TOKEN.encode() not in path.read_bytes(), path


PEAK_RSS = """
import resource, runpy, sys
sys.argv = sys.argv[1:]
sys.path.insert(0, {scripts!r})
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as stop:
    code = stop.code
else:
    code = 0
print("peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def peak_kb(env, *args) -> int:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK_RSS.format(scripts=str(SCRIPTS)),
            str(SCRIPTS / "upload_files.py"),
            *map(str, args),
        ],
        env=env,
        cwd=NO_CONFIG,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ok(result)
    return int(result.stderr.rsplit("peak_kb", 1)[1].split()[0])


@pytest.mark.slow
def test_memory_does_not_grow_with_file_size(deploy_workspace, deploy_env, tmp_path) -> None:
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(os.urandom(1024 * 1024))
    large.write_bytes(os.urandom(48 * 1024 * 1024))
    for destination in (VOLUME, DBFS):
        baseline = peak_kb(deploy_env, destination + "/s", small)
        heavy = peak_kb(deploy_env, destination + "/l", large)
        assert heavy - baseline < 24 * 1024, (destination, baseline, heavy)  # well under the 47 MB difference
    assert remote_bytes(deploy_workspace, DBFS + "/l", "large.bin") == large.read_bytes()


@pytest.mark.parametrize("damage", ["\n", "\r\n", " ", "\t", "\u20ac", "\x7f"])
def test_token_with_a_line_break_space_or_non_latin1_character_is_refused_by_name(
    deploy_workspace, deploy_env, files, damage
) -> None:
    # The HTTP library would otherwise stop with "Invalid header value b'Bearer <token>'" (a traceback with the token).
    head, tail = KNOWN_TOKEN[:20], KNOWN_TOKEN[20:]
    env = dict(deploy_env, DATABRICKS_TOKEN=head + damage + tail)
    for args in (["--dry-run", VOLUME, *files], [VOLUME, *files]):
        result = upload(env, *args)
        assert_one_line_error(result, code=2, contains="DATABRICKS_TOKEN")
        assert head not in result.stdout + result.stderr and tail not in result.stdout + result.stderr
    assert api_requests(deploy_workspace) == []


@pytest.mark.parametrize("edge", ["trailing", "leading"])
def test_token_with_a_line_break_at_either_end_is_refused_not_stripped(
    deploy_workspace, deploy_env, files, edge
) -> None:
    # The usual accident: a secret saved or mapped with its final newline. It used to be stripped and accepted.
    bad = KNOWN_TOKEN + "\n" if edge == "trailing" else "\n" + KNOWN_TOKEN
    result = upload(dict(deploy_env, DATABRICKS_TOKEN=bad), VOLUME, *files)
    assert_one_line_error(result, code=2, contains="DATABRICKS_TOKEN contains a line break")
    assert KNOWN_TOKEN not in result.stdout + result.stderr
    env = dict(deploy_env, AZURE_ACCESS_TOKEN=bad)
    del env["DATABRICKS_TOKEN"]
    result = upload(env, "--auth", "token", VOLUME, *files)
    assert_one_line_error(result, code=2, contains="AZURE_ACCESS_TOKEN contains a line break")
    assert KNOWN_TOKEN not in result.stdout + result.stderr
    assert api_requests(deploy_workspace) == []


def test_plain_http_to_a_remote_host_is_refused_without_sending_the_token(deploy_workspace, deploy_env, files) -> None:
    env = dict(deploy_env, DATABRICKS_HOST="http://adb-1.2.azuredatabricks.net")
    for args in (["--dry-run", VOLUME, *files], ["--host", "http://10.1.2.3:8080", VOLUME, *files]):
        result = upload(env, *args)
        assert_one_line_error(result, code=2, contains="https://")
        assert KNOWN_TOKEN not in result.stdout + result.stderr
    # The local workspace itself is plain http on 127.0.0.1, which stays allowed.
    ok(upload(deploy_env, "--dry-run", VOLUME, *files))


def test_a_host_that_is_not_a_url_is_exit_2_naming_its_source_without_any_retry(deploy_env, files, tmp_path) -> None:
    # Before: "not a url" became https://not a url, was retried as a network error and ended as exit 1.
    result = upload(dict(deploy_env, DATABRICKS_HOST="not a url"), "--dry-run", VOLUME, *files)
    assert_one_line_error(result, code=2, contains="DATABRICKS_HOST ('not a url') is not a workspace URL")
    config = tmp_path / "config.json"
    config.write_text('{"bundle": {"name": "b"}, "workspace": {"host": "https://adb-1.2.azure databricks.net"}}')
    env = dict(deploy_env)
    del env["DATABRICKS_HOST"]
    result = upload(env, "--config", config, "--dry-run", VOLUME, *files)
    assert_one_line_error(result, code=2, contains="workspace.host in the config")
    assert KNOWN_TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "tail, what",
    [
        ("/##vso[task.setvariable]pwned", "a fragment"),
        ("/api/2.0", "a path"),
        ("/?o=1234567890", "a query"),
    ],
)
def test_a_host_with_anything_after_the_host_name_is_refused_not_cut_off(
    deploy_workspace, deploy_env, files, tail, what
) -> None:
    # Before: the local workspace's URL plus a path/query/fragment was cut to scheme://host:port and the upload ran.
    env = dict(deploy_env, TF_BUILD="True", DATABRICKS_HOST=deploy_workspace.url + tail)
    result = upload(env, VOLUME, *files)
    assert_one_line_error(result, code=2, contains=f"DATABRICKS_HOST ('{deploy_workspace.url}")
    assert f"it has {what}" in result.stderr
    assert "##vso[" not in result.stdout + result.stderr and KNOWN_TOKEN not in result.stdout + result.stderr
    assert api_requests(deploy_workspace) == []
    ok(upload(dict(env, DATABRICKS_HOST=deploy_workspace.url + "/"), "--dry-run", VOLUME, *files))  # one '/' is fine


def test_an_expired_entra_access_token_is_refused_before_any_call(deploy_workspace, deploy_env, files) -> None:
    import base64
    import json
    import time

    def segment(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    expired = f"{segment({'alg': 'none'})}.{segment({'exp': int(time.time()) - 600, 'aud': 'x'})}.signature"
    env = dict(deploy_env, AZURE_ACCESS_TOKEN=expired)
    del env["DATABRICKS_TOKEN"]
    for auth in ("token", "auto"):
        result = upload(env, "--auth", auth, VOLUME, *files)
        assert_one_line_error(result, code=2, contains="AZURE_ACCESS_TOKEN has expired")
        assert expired not in result.stdout + result.stderr
    assert api_requests(deploy_workspace) == []
