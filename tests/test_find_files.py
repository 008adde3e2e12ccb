"""find_files.py and the discovery module: patterns, pruning, .gitignore, output formats, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_script, script_env
from repo_fixtures import ODD, SAMPLE

from cicdkit import discovery
from cicdkit.errors import InputError


def find_json(root: Path, *patterns: str, cwd=None, extra=()) -> dict:
    result = run_script("find_files.py", root, *patterns, "--format", "json", *extra, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_odd_repo_finds_every_requirement_file_and_no_decoy(odd_repo):
    document = find_json(odd_repo, "**/requirements/*.txt", extra=["--relative"])
    assert document["files"] == ODD.requirement_files
    assert document["count"] == len(ODD.requirement_files)
    assert not set(document["files"]) & set(ODD.decoys)


def test_slash_in_pattern_anchors_it_one_level_deep(odd_repo):
    files = find_json(odd_repo, "*/requirements/*.txt", extra=["--relative"])["files"]
    assert files == [path for path in ODD.requirement_files if path.count("/") == 2]
    assert "libs/alpha/requirements/common.txt" not in files


def test_setup_files_skip_venvs_node_modules_and_ignored_folders(odd_repo):
    files = find_json(odd_repo, "**/setup.py", "**/pyproject.toml", extra=["--relative"])["files"]
    assert files == ["beta/pyproject.toml", "beta/setup.py", "gamma pkg/pyproject.toml", "libs/alpha/pyproject.toml"]


def test_no_gitignore_includes_ignored_paths_but_still_prunes_venvs(odd_repo):
    files = find_json(odd_repo, "**/requirements/*.txt", extra=["--relative", "--no-gitignore"])["files"]
    assert "scratch/requirements/common.txt" in files
    assert "gamma pkg/local/requirements/common.txt" in files
    assert not any(path.startswith((".venv/", "node_modules/", "tools-env/")) for path in files)
    assert not any("/build/" in path or ".egg-info/" in path for path in files)


def test_vso_format_sets_the_seed_variable_with_absolute_sorted_paths(sample_repo):
    result = run_script(
        "find_files.py", sample_repo, "*/requirements/*.txt", "--format", "vso", env=script_env(TF_BUILD="True")
    )
    assert result.returncode == 0, result.stderr
    expected = ",".join(str(sample_repo.resolve() / path) for path in SAMPLE.requirement_files)
    assert result.stdout.strip() == f"##vso[task.setvariable variable=requirements_files]{expected}"


def test_vso_variable_names_and_override(sample_repo):
    env = script_env(TF_BUILD="True")
    setup = run_script("find_files.py", sample_repo, "**/setup.py", "**/pyproject.toml", "--format", "vso", env=env)
    assert setup.stdout.startswith("##vso[task.setvariable variable=setup_files]")
    assert setup.stdout.count(",") == 2  # package1/pyproject.toml, package2/pyproject.toml, package2/setup.py
    custom = run_script(
        "find_files.py", sample_repo, "**/*.sql", "--format", "vso", "--variable", "sql_notebooks", env=env
    )
    assert custom.stdout.startswith("##vso[task.setvariable variable=sql_notebooks]")
    bad = run_script("find_files.py", sample_repo, "**/*.sql", "--format", "vso", "--variable", "secret_x", env=env)
    assert_one_line_error(bad, 2, "reserved prefix")


def test_relative_root_from_another_directory_and_spaces(odd_repo, tmp_path):
    elsewhere = tmp_path / "somewhere else"
    elsewhere.mkdir()
    relative_root = os.path.relpath(odd_repo, elsewhere)
    by_relative = find_json(Path(relative_root), "**/notebooks/**/*.py", cwd=elsewhere)["files"]
    by_absolute = find_json(odd_repo, "**/notebooks/**/*.py")["files"]
    assert by_relative == by_absolute
    assert str(odd_repo / "gamma pkg" / "notebooks" / "with space" / "first notebook.py") in by_absolute
    lines = run_script("find_files.py", relative_root, "**/notebooks/**/*.py", cwd=elsewhere).stdout.splitlines()
    assert lines == by_absolute


def test_nested_gitignore_and_negation(tmp_path):
    (tmp_path / "pkg" / "requirements").mkdir(parents=True)
    (tmp_path / "pkg" / "requirements" / "dev.txt").write_text("x\n")
    (tmp_path / "pkg" / "requirements" / "local.txt").write_text("x\n")
    (tmp_path / ".gitignore").write_text("*.txt\n")
    (tmp_path / "pkg" / ".gitignore").write_text("!requirements/*.txt\nrequirements/local.txt\n")
    found = discovery.find_files(tmp_path, ["**/*.txt"])
    assert [path.relative_to(tmp_path).as_posix() for path in found] == ["pkg/requirements/dev.txt"]


def test_ancestor_gitignore_applies_with_ignore_root(tmp_path):
    (tmp_path / "pkg" / "notebooks").mkdir(parents=True)
    (tmp_path / "pkg" / "notebooks" / "a.py").write_text("")
    (tmp_path / "pkg" / "notebooks" / "b.local.py").write_text("")
    (tmp_path / ".gitignore").write_text("*.local.py\n/pkg/notebooks/a.py-never\n")
    names = lambda found: [path.name for path in found]  # noqa: E731
    assert names(discovery.find_files(tmp_path / "pkg", ["*.py"])) == ["a.py", "b.local.py"]
    assert names(discovery.find_files(tmp_path / "pkg", ["*.py"], ignore_root=tmp_path)) == ["a.py"]


@pytest.mark.parametrize(
    "lines, path",
    [
        (["*.md", "!docs/"], "docs/a.md"),  # a negated folder does not re-include what a file pattern ignores
        (["docs/keep.md", "!docs/"], "docs/keep.md"),
        (["!*/", "*.log"], "logs/"),  # pathspec's regex for */ is not anchored
        (["docs/", "!docs/keep.md"], "docs/keep.md"),
        (["a/*", "!a/b/"], "a/b/c.txt"),
    ],
)
def test_patterns_answer_as_gitignore_spec_does(lines, path):
    import pathspec

    assert discovery.Patterns(lines).verdict(path) == pathspec.GitIgnoreSpec.from_lines(lines).check_file(path).include


def test_walk_options_the_sync_selection_uses(tmp_path):
    """`pruned_dirs` replaces the default pruning, `linked_files=False` skips links, `walk_repository` reads the
    rules of the whole repository and yields nothing below an ignored folder (README "Configuration", **Sync**)."""
    repo = tmp_path / "repo"
    for name in ("node_modules/x.js", ".databricks/state", "app/a.py", "app/out/b.py", "app/keep/c.py", "target.txt"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("x\n")
    (repo / ".git" / "info").mkdir(parents=True)
    (repo / ".git" / "info" / "exclude").write_text("out/\n/app/keep/\n")
    (repo / "app" / "link.py").symlink_to(repo / "target.txt")
    sync = {"pruned_dirs": (".git", ".databricks"), "linked_files": False}

    def files(walk) -> list[str]:
        return sorted(relative for relative, _ in walk)

    assert files(discovery.walk_files(repo)) == [".databricks/state", "app/a.py", "app/link.py", "target.txt"]
    assert files(discovery.walk_files(repo, **sync)) == ["app/a.py", "node_modules/x.js", "target.txt"]
    assert files(discovery.walk_files(repo / "app", **sync)) == ["a.py", "keep/c.py", "out/b.py"]
    assert files(discovery.walk_repository(repo / "app", repo, **sync)) == ["app/a.py"]
    for ignored in ("app/out", "app/out/b.py", "app/keep", ".databricks"):
        assert files(discovery.walk_repository(repo / ignored, repo, **sync)) == []
    assert files(discovery.walk_repository(repo / "target.txt", repo, **sync)) == ["target.txt"]


def test_symlink_loops_are_not_followed(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "setup.py").write_text("")
    (tmp_path / "pkg" / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert discovery.find_files(tmp_path, ["**/setup.py"]) == [tmp_path.resolve() / "pkg" / "setup.py"]


def test_find_packages(odd_repo, sample_repo, tmp_path):
    assert [path.relative_to(odd_repo.resolve()).as_posix() for path in discovery.find_packages(odd_repo)] == sorted(
        ODD.packages
    )
    assert [path.name for path in discovery.find_packages(sample_repo)] == ["package1", "package2"]
    tools_only = tmp_path / "tools-only"
    tools_only.mkdir()
    (tools_only / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")  # tool settings only
    assert discovery.find_packages(tools_only) == []


@pytest.mark.parametrize(
    "patterns, name",
    [
        (["*/requirements/*.txt"], "requirements_files"),
        (["**/setup.py"], "setup_files"),
        (["**/setup.py", "**/pyproject.toml"], "setup_files"),
        (["dist/*.whl"], "dist_files"),
        (["*.whl"], "whl_files"),
        (["config.json"], "json_files"),
        (["**"], "files"),
    ],
)
def test_default_variable_names(patterns, name):
    assert discovery.default_variable_name(patterns) == name


def test_no_match_is_a_warning_not_a_failure(sample_repo):
    result = run_script("find_files.py", sample_repo, "**/*.nothing")
    assert result.returncode == 0
    assert result.stdout == ""
    assert "warning: no file under" in result.stderr


def test_errors_are_one_line(tmp_path):
    assert_one_line_error(run_script("find_files.py", tmp_path / "missing", "*.txt"), 2, "is not a folder")
    assert_one_line_error(run_script("find_files.py", tmp_path), 2, "required")
    (tmp_path / "a,b").mkdir()
    (tmp_path / "a,b" / "x.txt").write_text("")
    comma = run_script("find_files.py", tmp_path, "**/*.txt", "--format", "vso")
    assert_one_line_error(comma, 2, "contains a comma")


def test_relayed_paths_cannot_inject_commands(tmp_path):
    evil = tmp_path / "##vso[task.setvariable variable=injected]yes"
    evil.mkdir()
    (evil / "setup.py").write_text("")
    result = run_script("find_files.py", tmp_path, "**/setup.py", env=script_env(TF_BUILD="True"))
    assert result.returncode == 0
    assert "##vso[" not in result.stdout
    as_json = run_script("find_files.py", tmp_path, "**/setup.py", "--format", "json", env=script_env(TF_BUILD="True"))
    assert "##vso[" not in as_json.stdout
    assert json.loads(as_json.stdout)["files"] == [str(evil.resolve() / "setup.py")]  # still the exact path


# --- resolve_in_root: the one symlink rule of every step that reads a source tree ----------------------------


@pytest.fixture
def tree(tmp_path):
    """SRC with a notebook, a secret next to SRC, and the folder the links point into."""
    src = tmp_path / "SRC"
    (src / "notes").mkdir(parents=True)
    (src / "notes" / "a.py").write_text("x = 1\n")
    (tmp_path / "secret.txt").write_text("root:x:0:0\n")
    (tmp_path / "elsewhere").mkdir()
    return src


def test_resolve_in_root_refuses_a_link_leaving_the_root_naming_link_target_and_root(tree):
    (tree / "notes" / "passwd.txt").symlink_to(tree.parent / "secret.txt")
    with pytest.raises(InputError) as caught:
        discovery.resolve_in_root(tree / "notes" / "passwd.txt", tree)
    assert caught.value.one_line() == (
        f"{tree}/notes/passwd.txt is a symlink to {tree.parent}/secret.txt, outside {tree} "
        f"(replace the link with the file, or move its target inside {tree})"
    )


def test_resolve_in_root_names_the_linked_folder_on_the_way_out(tree):
    (tree.parent / "elsewhere" / "b.py").write_text("y = 2\n")
    (tree / "notes" / "ext").symlink_to(tree.parent / "elsewhere", target_is_directory=True)
    with pytest.raises(InputError, match=f"^{tree}/notes/ext is a symlink to {tree.parent}/elsewhere, outside {tree}$"):
        discovery.resolve_in_root(tree / "notes" / "ext" / "b.py", tree)


def test_resolve_in_root_follows_links_inside_the_root_once(tree):
    (tree / "alias.py").symlink_to("notes/a.py")  # relative, and a chain: link -> link -> file
    (tree / "alias2.py").symlink_to("alias.py")
    assert discovery.resolve_in_root(tree / "alias2.py", tree) == (tree / "notes" / "a.py").resolve()
    assert discovery.resolve_in_root(tree / "notes" / "a.py", tree) == (tree / "notes" / "a.py").resolve()


def test_resolve_in_root_takes_the_roots_own_real_path_as_the_boundary(tree):
    (tree.parent / "via").symlink_to(tree, target_is_directory=True)  # the user named SRC through a link
    (tree / "alias.py").symlink_to(tree / "notes" / "a.py")  # absolute target, spelt with the real path
    assert (
        discovery.resolve_in_root(tree.parent / "via" / "alias.py", tree.parent / "via")
        == (tree / "notes" / "a.py").resolve()
    )


def test_resolve_in_root_refuses_loops_and_dangling_links(tree):
    (tree / "notes" / "a2").symlink_to("b")
    (tree / "notes" / "b").symlink_to("a2")
    with pytest.raises(InputError, match=r"^.*/notes/a2 is a symlink loop \(.*/notes/a2 -> b -> a2\)$"):
        discovery.resolve_in_root(tree / "notes" / "a2", tree)
    (tree / "notes" / "gone").symlink_to("missing.py")
    with pytest.raises(
        InputError, match=f"^{tree}/notes/gone is a symlink to {tree.resolve()}/notes/missing.py, which does not exist$"
    ):
        discovery.resolve_in_root(tree / "notes" / "gone", tree)
    (tree / "notes" / "up").symlink_to("..", target_is_directory=True)
    with pytest.raises(InputError, match="a folder that contains the link \\(a loop\\)"):
        discovery.resolve_in_root(tree / "notes" / "up", tree)


def test_resolve_in_root_entered_folders_make_a_pair_of_folder_links_a_loop(tree):
    (tree / "x").mkdir()
    (tree / "y").mkdir()
    (tree / "x" / "to_y").symlink_to("../y", target_is_directory=True)
    (tree / "y" / "to_x").symlink_to("../x", target_is_directory=True)
    # On its own each link points to a sibling; reached through x/to_y, y/to_x leads back to x.
    assert discovery.resolve_in_root(tree / "y" / "to_x", tree) == (tree / "x").resolve()
    with pytest.raises(InputError, match="a loop"):
        discovery.resolve_in_root(
            tree / "x" / "to_y" / "to_x", tree, entered=[(tree / "x").resolve(), (tree / "y").resolve()]
        )


def test_walk_files_with_a_source_root_checks_every_link_it_meets(tree):
    (tree / "notes" / "alias.py").symlink_to("a.py")
    (tree / "notes" / "inner").symlink_to(tree / "notes", target_is_directory=True)  # a loop, but ignored below
    (tree / ".gitignore").write_text("inner\n")
    found = sorted(relative for relative, _ in discovery.walk_files(tree, symlinks_within=tree))
    assert found == [".gitignore", "notes/a.py", "notes/alias.py"]
    (tree / "notes" / "ext").symlink_to(tree.parent / "elsewhere", target_is_directory=True)
    with pytest.raises(InputError, match="notes/ext is a symlink to .*, outside"):
        list(discovery.walk_files(tree, symlinks_within=tree))
    (tree / "notes" / "ext").unlink()
    (tree / "notes" / "leak.txt").symlink_to(tree.parent / "secret.txt")
    with pytest.raises(InputError, match="notes/leak.txt is a symlink to .*secret.txt, outside"):
        list(discovery.walk_files(tree, symlinks_within=tree))


def test_a_symlink_loop_does_not_crash_find_files(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "setup.py").write_text("")
    (tmp_path / "pkg" / "a").symlink_to("b")
    (tmp_path / "pkg" / "b").symlink_to("a")  # entry.is_file() raises ELOOP on these
    result = run_script("find_files.py", tmp_path, "**/*", "--relative")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pkg/setup.py"]
