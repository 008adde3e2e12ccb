"""Pure decisions of a library rollout: matching by distribution, one uninstall/install, one restart."""

from __future__ import annotations

import pytest

from cicdkit import libraries
from cicdkit.errors import InputError
from cicdkit.libraries import Library

OLD = "/Volumes/main/default/libs/package1-0.1.0-py3-none-any.whl"
NEW = "/Volumes/main/default/libs/package1-0.2.0-py3-none-any.whl"
OTHER = "/Volumes/main/default/libs/package2-1.0.0-py3-none-any.whl"


def status(spec: dict, state: str = "INSTALLED", messages=()) -> dict:
    return {"library": spec, "status": state, "messages": list(messages)}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("My_Pkg-1.0-py3-none-any.whl", "my-pkg"),
        ("/Workspace/x/my.pkg-2.0.1-1-cp311-cp311-linux_x86_64.whl", "my-pkg"),
        ("dbfs:/FileStore/jars/Package1-0.1-py3-none-any.whl", "package1"),
    ],
)
def test_wheel_distribution_is_normalised(name, expected):
    assert libraries.wheel_distribution(name) == expected


def test_not_a_wheel_is_input_error():
    with pytest.raises(InputError, match="not a wheel"):
        libraries.wheel_distribution("/Volumes/a/b/c/package1.zip")


def test_older_version_is_uninstalled_and_others_left_alone():
    statuses = [status({"whl": OLD}), status({"whl": OTHER}), status({"pypi": {"package": "requests==2.31"}})]
    plan = libraries.plan_cluster("c1", statuses, [Library("whl", NEW)])
    assert plan.uninstall == (Library("whl", OLD),)
    assert plan.install == (Library("whl", NEW),)
    assert plan.needs_restart
    assert libraries.next_action("RUNNING", plan, no_restart=False) == "restart"
    assert libraries.next_action("TERMINATED", plan, no_restart=False) == "start"
    assert libraries.next_action("RUNNING", plan, no_restart=True) == "none"


def test_same_spec_installed_is_kept_so_a_rerun_changes_nothing():
    plan = libraries.plan_cluster("c1", [status({"whl": NEW})], [Library("whl", NEW)])
    assert not plan.changes and plan.keep == (Library("whl", NEW),)
    assert libraries.next_action("RUNNING", plan, no_restart=False) == "none"
    assert libraries.next_action("TERMINATED", plan, no_restart=False) == "none"


def test_matching_never_uses_a_repo_or_folder_name():
    # A wheel of another distribution in a folder named like ours is not ours.
    statuses = [status({"whl": "/Volumes/main/default/package1/other_tool-1.0-py3-none-any.whl"})]
    plan = libraries.plan_cluster("c1", statuses, [Library("whl", NEW)])
    assert plan.uninstall == ()


def test_pypi_pin_of_the_same_distribution_is_replaced():
    statuses = [status({"pypi": {"package": "PACKAGE1==0.0.9"}})]
    plan = libraries.plan_cluster("c1", statuses, [Library("whl", NEW)])
    assert plan.uninstall == (Library("pypi", "PACKAGE1==0.0.9"),)


def test_new_install_without_old_version_needs_no_restart_but_a_terminated_cluster_is_started():
    plan = libraries.plan_cluster("c1", [], [Library("whl", NEW), Library("whl", OTHER)])
    assert plan.install == (Library("whl", NEW), Library("whl", OTHER)) and not plan.needs_restart
    assert libraries.next_action("RUNNING", plan, no_restart=False) == "none"
    assert libraries.next_action("TERMINATED", plan, no_restart=False) == "start"


def test_removal_left_pending_by_an_earlier_run_still_gets_its_restart():
    statuses = [status({"whl": OLD}, "UNINSTALL_ON_RESTART"), status({"whl": NEW})]
    plan = libraries.plan_cluster("c1", statuses, [Library("whl", NEW)])
    assert not plan.changes and plan.needs_restart
    assert libraries.next_action("RUNNING", plan, no_restart=False) == "restart"


def test_failed_install_of_same_spec_is_retried():
    plan = libraries.plan_cluster("c1", [status({"whl": NEW}, "FAILED", ["boom"])], [Library("whl", NEW)])
    assert plan.uninstall == (Library("whl", NEW),) and plan.install == (Library("whl", NEW),)


def test_progress_reports_failures_with_messages_and_pending():
    wanted = [Library("whl", NEW), Library("whl", OTHER)]
    statuses = [status({"whl": NEW}, "FAILED", ["No such file", "second line"]), status({"whl": OTHER}, "INSTALLING")]
    progress = libraries.library_progress(statuses, wanted)
    assert not progress.done
    assert progress.failed == ((Library("whl", NEW), "No such file second line"),)
    assert progress.pending == ((Library("whl", OTHER), "INSTALLING"),)
    done = libraries.library_progress([status({"whl": NEW}), status({"whl": OTHER}, "RESTORED")], wanted)
    assert done.done and done.describe() == "installed"
    missing = libraries.library_progress([], wanted)
    assert not missing.done and missing.pending[0][1] == "not listed"


def test_requirements_file_becomes_pypi_libraries(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n--index-url https://pypi.example/simple\nrequests==2.32.3  # pinned\n\npyyaml>=6\n")
    assert libraries.requirements_libraries(path) == (
        [
            Library("pypi", "pyyaml>=6", "https://pypi.example/simple"),
            Library("pypi", "requests==2.32.3", "https://pypi.example/simple"),
        ],
        [],
    )
    assert Library("pypi", "pyyaml>=6", "r").spec() == {"pypi": {"package": "pyyaml>=6", "repo": "r"}}


def test_requirements_file_is_read_by_the_merge_parser(tmp_path):
    """Includes, continuations and duplicates are read as merge_requirements.py reads them; one library each."""
    (tmp_path / "common.txt").write_text("requests>=2\n--prefer-binary\n")
    path = tmp_path / "requirements.txt"
    path.write_text("-r common.txt\nrequests<3 \\\n  --hash=sha256:ab\n--only-binary=:all:\n-f ./wheels\n")
    found, notices = libraries.requirements_libraries(path)
    assert found == [Library("pypi", "requests<3,>=2")]
    assert any("ignored --prefer-binary" in n and "common.txt:2" in n for n in notices)
    assert any("ignored --only-binary :all:" in n and "requirements.txt:4" in n for n in notices)
    assert any("dropped -f" in n for n in notices) and any("--hash" in n for n in notices)


@pytest.mark.parametrize(
    "line, option",
    [
        ("--extra-index-url https://extra.example/simple", "--extra-index-url"),
        ("--trusted-host extra.example", "--trusted-host"),
        ("--pre", "--pre"),
    ],
)
def test_requirements_options_a_cluster_library_cannot_honour_are_refused(tmp_path, line, option):
    path = tmp_path / "requirements.txt"
    path.write_text(f"requests==2.32.3\n{line}\n")
    with pytest.raises(InputError, match=f":2: {option} cannot be installed as a cluster library") as error:
        libraries.requirements_libraries(path)
    assert "upload the requirements file" in error.value.hint


@pytest.mark.parametrize(
    "text, message",
    [
        ("requests==1\nrequests==2\n", "conflicting requirements for 'requests'"),
        ("-i https://a.example/simple\n--index-url https://b.example/simple\nx\n", "conflicting --index-url"),
        ("-e .\n", "editable installs"),
        ("--index-url https://user:secret@a.example/simple\nx\n", "literal credentials"),
    ],
)
def test_requirements_file_errors_are_the_merge_parser_errors(tmp_path, text, message):
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as error:
        libraries.requirements_libraries(path)
    assert "secret" not in str(error.value)


def test_library_spec_round_trips():
    for spec in (
        {"whl": NEW},
        {"pypi": {"package": "x==1"}},
        {"maven": {"coordinates": "a:b:1", "repo": "r"}},
        {"jar": "/x.jar"},
    ):
        assert Library.from_spec(spec).spec() == spec
