"""The shared step summary: text for people, a markdown section uploaded under Azure DevOps."""

from __future__ import annotations

from cicdkit import summary


def test_text_summary_lists_changes_and_is_inert_outside_a_pipeline(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("TF_BUILD", raising=False)
    monkeypatch.setenv("CICD_SUMMARY_DIR", str(tmp_path))
    s = summary.Summary("install_libraries", "Install libraries")
    s.change("cluster a: installed x.whl")
    s.skip("cluster b: up to date")
    assert s.finish() is None
    out = capsys.readouterr().out
    assert out.startswith("Install libraries: 1 changed, 1 unchanged in ")
    assert "change: cluster a: installed x.whl" in out
    assert list(tmp_path.iterdir()) == []


def test_pipeline_section_is_written_appended_and_uploaded(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TF_BUILD", "True")
    monkeypatch.setenv("CICD_SUMMARY_DIR", str(tmp_path))
    first = summary.Summary("upload_files", "Upload files")
    first.change("a.whl")
    second = summary.Summary("install_libraries", "Install libraries", dry_run=True)
    second.change("##vso[task.complete result=Failed]pipe|x")
    first.finish()
    path = second.finish()
    out = capsys.readouterr().out
    assert f"##vso[task.uploadsummary]{path}" in out
    section = path.read_text(encoding="utf-8")
    assert section.startswith("### Install libraries — dry run")
    assert "##vso[" not in section and "\\|" in section
    cumulative = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert cumulative.index("Upload files") < cumulative.index("Install libraries")
    # The relayed text cannot start an agent command in the log either.
    assert "##vso[task.complete" not in out


def test_long_unchanged_list_is_a_count_in_the_text_but_complete_in_markdown(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TF_BUILD", "True")
    monkeypatch.setenv("CICD_SUMMARY_DIR", str(tmp_path))
    s = summary.Summary("deploy_notebooks", "Deploy notebooks")
    for number in range(400):
        s.skip(f"nb{number:03}")
    for number in range(30):
        s.change(f"changed{number:02}")
    s.fail("broken")
    s.note("a note")
    path = s.finish()
    out = capsys.readouterr().out
    shown = [line for line in out.splitlines() if line.startswith("  unchanged: ")]
    assert shown == [f"  unchanged: nb{n:03}" for n in range(summary.UNCHANGED_SHOWN)] + [
        "  unchanged: ... and 395 more (all listed with --verbose, or the deployment summary)"
    ]
    assert "400 unchanged" in out.splitlines()[0]
    assert all(f"  change: changed{n:02}" in out for n in range(30))  # changes, failures, notes: every one
    assert "  FAILED: broken" in out and "  note: a note" in out
    section = path.read_text(encoding="utf-8")
    assert all(f"- nb{n:03}\n" in section for n in range(400))


def test_verbose_or_a_short_list_shows_every_unchanged_item(monkeypatch):
    monkeypatch.delenv("TF_BUILD", raising=False)
    verbose = summary.Summary("upload_files", "Upload files", verbose=True)
    short = summary.Summary("upload_files", "Upload files")
    for number in range(summary.UNCHANGED_LIMIT + 1):
        verbose.skip(f"f{number}")
        if number < summary.UNCHANGED_LIMIT:
            short.skip(f"f{number}")
    assert verbose.text().count("  unchanged: f") == summary.UNCHANGED_LIMIT + 1 and "more" not in verbose.text()
    assert short.text().count("  unchanged: f") == summary.UNCHANGED_LIMIT and "more" not in short.text()
    verbose.verbose = False
    assert verbose.text().endswith(
        f"  unchanged: ... and {summary.UNCHANGED_LIMIT + 1 - summary.UNCHANGED_SHOWN} more (all listed with --verbose)"
    )
