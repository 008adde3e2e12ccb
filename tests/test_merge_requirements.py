"""merge_requirements.py and the requirements module: includes, kept/dropped options, duplicates, conflicts."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_script
from packaging.specifiers import SpecifierSet

from cicdkit import requirements
from cicdkit.errors import InputError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def merged_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]


# --- pure functions --------------------------------------------------------------------------------------------


def test_logical_lines_drop_comments_and_join_continuations():
    text = "# header\n\nrequests>=2 # http\\\npandas \\\n  ==2.1\nurl-with-hash==1#not-a-comment\n"
    assert list(requirements.logical_lines(text)) == [
        (3, "requests>=2"),
        (4, "pandas   ==2.1"),
        (6, "url-with-hash==1#not-a-comment"),
    ]


@pytest.mark.parametrize(
    ("first", "second", "conflict"),
    [
        ("==1.0", "==1.0", False),
        ("==1.0", "==2.0", True),
        ("==1.0", ">=1.0,<2", False),
        ("==1.0", "!=1.0", True),
        (">=2", "<1.5", True),
        (">=1", "<2", False),
        (">=2", "<2", True),
        (">=2", "<=2", False),
        ("~=1.4.2", ">=1.5", True),
        ("~=1.4", ">=1.9", False),
        ("==1.4.*", "==1.5", True),
        ("==1.4.*", "==1.4.7", False),
        ("", "==3", False),
        ("===1.0", "===2.0", True),
    ],
)
def test_specifiers_conflict(first, second, conflict):
    assert requirements.specifiers_conflict(SpecifierSet(first), SpecifierSet(second)) is conflict


def test_merge_combines_duplicates_extras_and_canonical_names(tmp_path):
    a = write(tmp_path / "a.txt", "Requests>=2.28\nPyYAML==6.0.1\nfoo[x]>=1\n")
    b = write(tmp_path / "b.txt", "requests<3\npyyaml==6.0.1\nfoo[y]>=1,<2\n")
    merged = requirements.merge_files([a, b])
    assert merged.requirements == ["foo[x,y]<2,>=1", "PyYAML==6.0.1", "Requests<3,>=2.28"]
    assert merged.files == [a, b]


def test_markers_keep_separate_lines_and_only_compare_when_they_can_apply_together(tmp_path):
    a = write(tmp_path / "a.txt", 'numpy==1.26; python_version < "3.12"\n')
    b = write(tmp_path / "b.txt", 'numpy==2.0; python_version >= "3.12"\n')
    merged = requirements.merge_files([a, b])
    assert merged.requirements == ['numpy==1.26; python_version < "3.12"', 'numpy==2.0; python_version >= "3.12"']
    c = write(tmp_path / "c.txt", "numpy==1.25\n")
    with pytest.raises(InputError, match="conflicting requirements for 'numpy'"):
        requirements.merge_files([a, c])


def test_conflict_names_both_files_and_lines(tmp_path):
    a = write(tmp_path / "p1" / "common.txt", "# runtime\nrequests==2.31.0\n")
    b = write(tmp_path / "p2" / "common.txt", "\n\npandas\nrequests==2.32.0\n")
    with pytest.raises(InputError) as caught:
        requirements.merge_files([a, b])
    message = caught.value.message
    assert "common.txt:2" in message and "common.txt:4" in message
    assert "p1" in message and "p2" in message and "'requests==2.31.0'" in message and "'requests==2.32.0'" in message


def test_includes_are_relative_to_the_including_file_and_cycles_are_harmless(tmp_path):
    write(tmp_path / "pkg" / "requirements" / "common.txt", "-r ../base/base.txt\nrequests\n")
    write(tmp_path / "pkg" / "base" / "base.txt", "--requirement=more/extra.txt\npyyaml\n")
    write(tmp_path / "pkg" / "base" / "more" / "extra.txt", "-r ../../requirements/common.txt\nattrs==23.1\n")
    merged = requirements.merge_files([tmp_path / "pkg" / "requirements" / "common.txt"])
    assert merged.requirements == ["attrs==23.1", "pyyaml", "requests"]
    assert len(merged.files) == 3


def test_missing_include_names_the_including_line(tmp_path):
    a = write(tmp_path / "a.txt", "requests\n-r nope.txt\n")
    with pytest.raises(InputError, match=r"a\.txt:2: included file .*nope\.txt does not exist"):
        requirements.merge_files([a])


def test_kept_and_dropped_options(tmp_path):
    a = write(
        tmp_path / "a.txt",
        "-i https://pypi.org/simple\n--extra-index-url https://${FEED_TOKEN}@pkgs.example/simple\n"
        "--find-links ./wheels\n--no-index\n--pre\nrequests --hash=sha256:abc --hash sha256:def\n",
    )
    b = write(tmp_path / "b.txt", "--index-url=https://pypi.org/simple\n--pre\n")
    merged = requirements.merge_files([a, b])
    assert merged.options == [
        "--index-url https://pypi.org/simple",
        "--extra-index-url https://${FEED_TOKEN}@pkgs.example/simple",
        "--pre",
    ]
    assert merged.requirements == ["requests"]
    assert len(merged.warnings) == 3
    assert any("--find-links" in w for w in merged.warnings) and any("--hash" in w for w in merged.warnings)


def test_two_index_urls_conflict(tmp_path):
    a = write(tmp_path / "a.txt", "--index-url https://one/simple\n")
    b = write(tmp_path / "b.txt", "--index-url https://two/simple\n")
    with pytest.raises(InputError, match="conflicting --index-url"):
        requirements.merge_files([a, b])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-e ../pkg", "editable installs cannot go onto a cluster"),
        ("-c constraints.txt", "constraint files"),
        ("./dist/pkg-1.0-py3-none-any.whl", "local path requirement"),
        ("sub/dir", "local path requirement"),
        ("https://example.com/pkg-1.0.tar.gz", "unnamed URL requirement"),
        ("pkg @ file:///tmp/pkg.whl", "points at the build agent"),
        ("--use-feature=fast-deps", "option --use-feature is not supported"),
        ("requests --global-option=x", "per-requirement option --global-option"),
        ("requests==", "invalid requirement"),
        ("--extra-index-url https://user:s3cr3t-t0ken@feed/simple", "literal credentials"),
    ],
)
def test_refused_lines(tmp_path, line, message):
    a = write(tmp_path / "a.txt", f"ok-package\n{line}\n")
    with pytest.raises(InputError, match=message) as caught:
        requirements.merge_files([a])
    assert "a.txt:2" in caught.value.message
    assert "s3cr3t-t0ken" not in caught.value.one_line()


def test_direct_url_requirements(tmp_path):
    a = write(tmp_path / "a.txt", 'lib @ https://h/lib-1.0-py3-none-any.whl ; python_version >= "3.8"\n')
    b = write(tmp_path / "b.txt", 'lib @ https://h/lib-1.0-py3-none-any.whl ; python_version >= "3.8"\n')
    assert requirements.merge_files([a, b]).requirements == [
        'lib @ https://h/lib-1.0-py3-none-any.whl ; python_version >= "3.8"'
    ]
    c = write(tmp_path / "c.txt", "lib==1.0\n")
    with pytest.raises(InputError, match="direct URL"):
        requirements.merge_files([a, c])


# --- the script ----------------------------------------------------------------------------------------------


def test_script_merges_files_given_on_the_command_line(tmp_path):
    a = write(tmp_path / "a" / "common.txt", "requests>=2\n")
    b = write(tmp_path / "b" / "common.txt", "pyyaml\nrequests<3\n")
    out = tmp_path / "out" / "requirements.txt"
    result = run_script("merge_requirements.py", "--out", out, a, b, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert merged_lines(out) == ["pyyaml", "requests<3,>=2"]
    assert "# merged by merge_requirements.py from:\n#   a/common.txt\n#   b/common.txt\n" in out.read_text()
    assert "merged 2 requirement(s)" in result.stdout


def test_script_finds_package_files_under_root_and_skips_decoys(tmp_path):
    write(tmp_path / "p1" / "requirements" / "common.txt", "requests\n")
    write(tmp_path / "p1" / "requirements" / "dev.txt", "-r common.txt\npytest\n")
    write(tmp_path / "p 2" / "requirements" / "common.txt", "pyyaml\n")
    write(tmp_path / ".venv" / "lib" / "requirements" / "common.txt", "decoy==0\n")
    write(tmp_path / "node_modules" / "x" / "requirements" / "common.txt", "decoy==0\n")
    out = tmp_path / "merged.txt"
    result = run_script("merge_requirements.py", "--kind", "common", "--root", tmp_path, "--out", out)
    assert result.returncode == 0, result.stderr
    assert merged_lines(out) == ["pyyaml", "requests"]
    dev = run_script("merge_requirements.py", "--kind", "dev", "--root", tmp_path, "--out", tmp_path / "dev.txt")
    assert dev.returncode == 0, dev.stderr
    assert merged_lines(tmp_path / "dev.txt") == ["pytest", "requests"]


def test_script_conflict_is_one_line_error_and_leaves_previous_output(tmp_path):
    a = write(tmp_path / "a.txt", "requests==2.31.0\n")
    b = write(tmp_path / "b.txt", "requests==2.32.0\n")
    out = write(tmp_path / "merged.txt", "previous\n")
    result = run_script("merge_requirements.py", "--out", out, a, b, cwd=tmp_path)
    assert_one_line_error(result, 2, "conflicting requirements for 'requests'")
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_script_warnings_become_logissue_in_a_pipeline(tmp_path):
    from helpers import script_env

    a = write(tmp_path / "a.txt", "--find-links /agent/wheels\nrequests\n")
    result = run_script("merge_requirements.py", "--out", tmp_path / "m.txt", a, env=script_env(TF_BUILD="True"))
    assert result.returncode == 0, result.stderr
    assert "##vso[task.logissue type=warning]" in result.stdout and "dropped --find-links" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give requirement FILEs or --root DIR"),
        (("--root", "."), "give requirement FILEs or --root DIR"),
        (("missing.txt",), "requirement file missing.txt does not exist"),
    ],
)
def test_script_usage_errors(tmp_path, args, message):
    write(tmp_path / "x.txt", "requests\n")
    extra = ("x.txt",) if args == ("--root", ".") else ()
    result = run_script("merge_requirements.py", "--out", "m.txt", *args, *extra, cwd=tmp_path)
    assert_one_line_error(result, 2, message)


def test_script_root_without_files(tmp_path):
    result = run_script("merge_requirements.py", "--root", tmp_path, "--out", tmp_path / "m.txt")
    assert_one_line_error(result, 2, "no */requirements/common.txt found")


TOKEN = "dapi0123456789abcdef-known-token"


@pytest.mark.parametrize(
    "line",
    [
        f"--extra-index-url https://build:{TOKEN}@pkgs.example/simple",
        f"--find-links https://build:{TOKEN}@pkgs.example/links",
        f"-e git+https://build:{TOKEN}@github.com/org/repo.git#egg=repo",
        f"private @ https://build:{TOKEN}@pkgs.example/private-1.0-py3-none-any.whl",
        f"https://build:{TOKEN}@pkgs.example/private-1.0-py3-none-any.whl",
    ],
)
def test_credentials_in_requirement_files_never_reach_the_output(tmp_path, line):
    from helpers import script_env

    source = write(tmp_path / "common.txt", f"requests\n{line}\n")
    out = tmp_path / "merged.txt"
    for env in (None, script_env(TF_BUILD="True")):
        result = run_script("merge_requirements.py", "--out", out, source, env=env)
        assert TOKEN not in result.stdout + result.stderr
        if out.exists():
            assert TOKEN not in out.read_text()


def test_utf8_bom_and_crlf_are_read(tmp_path):
    source = tmp_path / "common.txt"
    source.write_bytes("\ufeffrequests>=2\r\npyyaml\r\n".encode("utf-8"))
    assert requirements.merge_files([source]).requirements == ["pyyaml", "requests>=2"]
