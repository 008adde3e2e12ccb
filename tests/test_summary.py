"""The shared step summary: text for people, a markdown section uploaded under Azure DevOps."""
from __future__ import annotations

import summary


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
