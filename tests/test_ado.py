"""ado.py: escaping, secrets and injection, checked against a decoder that follows the agent's rules."""

from __future__ import annotations

import base64
import io
import json
import re
import sys

import pytest
from agent_decoder import parse_line, parse_output

from cicdkit import ado
from cicdkit.errors import UsageError

HOSTILE = [
    "a;b]c",
    "line1\r\nline2",
    "100%",
    "%3B literal",
    "%AZP25 literal",
    "x%0Ay",
    "ends with]",
    "  leading and trailing  ",
    "x\n##vso[task.setvariable variable=pwned]1",
    "]##vso[task.complete result=Succeeded]done",
    "%5D%0A%0D%AZP25;;]]",
    "ünïcödé = ok",
    "",
]


@pytest.fixture
def pipeline(monkeypatch):
    monkeypatch.setenv("TF_BUILD", "True")


@pytest.fixture
def local(monkeypatch):
    monkeypatch.delenv("TF_BUILD", raising=False)


@pytest.mark.parametrize("value", HOSTILE)
def test_variable_value_round_trips_and_injects_nothing(pipeline, capsys, value):
    ado.set_variable("target_var", value)
    out = capsys.readouterr().out
    commands = parse_output(out)
    assert len(commands) == 1, out
    command = commands[0]
    assert (command.area, command.event) == ("task", "setvariable")
    assert command.properties == {"variable": "target_var"}
    assert command.data == value


@pytest.mark.parametrize("value", HOSTILE)
def test_property_values_round_trip(pipeline, capsys, value):
    ado.log_issue("warning", "message", source_path=value or "x", line=3)
    command = parse_line(capsys.readouterr().out.strip())
    assert command.properties["sourcepath"] == (value or "x")
    assert command.properties["linenumber"] == "3"
    assert command.data == "message"


def test_log_issue_names_the_column(pipeline, capsys, monkeypatch):
    ado.log_issue("warning", "unknown field: x", "config.json", 12, column=9)
    command = parse_line(capsys.readouterr().out.strip())
    assert command.properties == {
        "type": "warning",
        "sourcepath": "config.json",
        "linenumber": "12",
        "columnnumber": "9",
    }
    ado.log_issue("warning", "no line", "config.json", column=9)  # a column without a line means nothing
    assert parse_line(capsys.readouterr().out.strip()).properties == {"type": "warning", "sourcepath": "config.json"}
    monkeypatch.delenv("TF_BUILD")
    ado.log_issue("warning", "unknown field: x", "config.json", 12, column=9)
    assert capsys.readouterr().err == "warning: config.json:12:9: unknown field: x\n"


@pytest.mark.parametrize("value", [v for v in HOSTILE if v and "\n" not in v and "\r" not in v])
def test_single_line_secret_only_inside_issecret_command(pipeline, capsys, value):
    ado.set_variable("token", value, secret=True)
    captured = capsys.readouterr()
    commands = parse_output(captured.out)
    assert [(c.event, c.properties) for c in commands] == [("setvariable", {"variable": "token", "issecret": "true"})]
    assert commands[0].data == value
    assert captured.err == ""


def test_multiline_secret_is_registered_per_line_then_exported_on_one_line(pipeline, capsys):
    pem = "-----BEGIN KEY-----\nabc%;]def\n-----END KEY-----\n"
    ado.set_variable("cert", pem, secret=True)
    out = capsys.readouterr().out
    commands = parse_output(out)
    secrets = [c.data for c in commands if c.event == "setsecret"]
    assert secrets[:3] == ["-----BEGIN KEY-----", "abc%;]def", "-----END KEY-----"]
    (setvar,) = [c for c in commands if c.event == "setvariable"]
    assert setvar.properties == {"variable": "cert", "issecret": "true"}
    assert "\n" not in setvar.data and "\r" not in setvar.data
    assert base64.b64decode(setvar.data).decode() == pem
    # The encoded form is registered before the variable command that carries it.
    assert secrets[-1] == setvar.data
    assert out.index("task.setsecret]" + ado.escape(setvar.data)) < out.index("task.setvariable")
    # No line carries a raw value line outside setsecret/setvariable commands.
    for line in out.splitlines():
        if "abc%" in line or "abc%AZP25" in line:
            assert parse_line(line).event == "setsecret"


def test_multiline_json_secret_is_compacted(pipeline, capsys):
    value = '{\n  "a": 1,\n  "b": "x;y]"\n}'
    ado.set_variable("cfg", value, secret=True)
    commands = parse_output(capsys.readouterr().out)
    (setvar,) = [c for c in commands if c.event == "setvariable"]
    assert json.loads(setvar.data) == json.loads(value)
    assert "\n" not in setvar.data


def test_secret_is_never_shown_outside_a_pipeline(local, capsys):
    ado.set_variable("token", "dapi-SECRET-123", secret=True)
    ado.set_secret("dapi-SECRET-123")
    captured = capsys.readouterr()
    assert "dapi-SECRET-123" not in captured.out + captured.err
    assert captured.out.strip() == "[set variable] token=*** (secret)"


def test_plain_lines_outside_a_pipeline(local, capsys):
    ado.set_variable("host", "https://x", output=True)
    ado.set_progress(150, "almost")
    with ado.group("Build"):
        pass
    captured = capsys.readouterr()
    assert "##" not in captured.out
    assert captured.out.splitlines() == [
        "[set variable] host=https://x (output)",
        "[progress] 100% almost",
        "== Build ==",
    ]


def test_commands_in_a_pipeline(pipeline, capsys, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("# hi\n")
    ado.set_variable("name", "v", output=True, readonly=True)
    ado.set_progress(-5, "start")
    ado.upload_summary(summary)
    with ado.group("Group ##vso[x.y]"):
        print("inside")
    out = capsys.readouterr().out
    commands = parse_output(out)
    assert [(c.event, c.properties, c.data) for c in commands] == [
        ("setvariable", {"variable": "name", "isoutput": "true", "isreadonly": "true"}, "v"),
        ("setprogress", {"value": "0"}, "start"),
        ("uploadsummary", {}, str(summary)),
    ]
    assert "##[group]" in out and "##[endgroup]" in out


@pytest.mark.parametrize(
    "text",
    [
        "pip says ##vso[task.setvariable variable=pwned]1",
        "##VSO[task.complete result=Succeeded]",
        "nested ##vso[task.setvariable variable=a]##vso[task.setvariable variable=b]",
        "##[error]fake error and ##[group]fake group",
    ],
)
def test_neutralised_text_injects_nothing(text):
    safe = ado.neutralise(text)
    assert parse_line(safe) is None
    assert "##[" not in safe
    # Readable: only zero-width spaces were added.
    assert safe.replace("\u200b", "") == text


def test_relay_prints_neutralised_lines(pipeline, capsys):
    ado.relay("ok\nbad ##vso[task.setvariable variable=x]y")
    assert parse_output(capsys.readouterr().out) == []


def test_neutralised_json_reads_back_exactly_and_injects_nothing():
    value = {"files": ["a##vso[task.setvariable variable=x]1", "###[error]b", "####"], "n##": 1}
    safe = ado.neutralise_json(json.dumps(value, indent=2))
    assert json.loads(safe) == value
    assert "##" not in safe and parse_output(safe) == []


@pytest.mark.parametrize("name", ["", "a b", "x;y", "a]b", "secretThing", "PATH_extra", "-lead"])
def test_bad_variable_names_are_refused(pipeline, capsys, name):
    with pytest.raises(UsageError):
        ado.set_variable(name, "v")
    assert capsys.readouterr().out == ""


def test_bad_issue_type_is_refused():
    with pytest.raises(ValueError):
        ado.log_issue("info", "x")


def test_multiline_json_secret_does_not_register_its_punctuation_lines(pipeline, capsys):
    ado.set_variable("cfg", '{\n  "client_secret": "abc;def"\n}', secret=True)
    commands = parse_output(capsys.readouterr().out)
    registered = [c.data for c in commands if c.event == "setsecret"]
    assert registered == ['{"client_secret":"abc;def"}']


def test_trivial_lines_of_a_multiline_secret_are_not_registered(pipeline, capsys):
    ado.set_variable("key", "line-one-secret\n}\n--\nab\nline-two-secret\n", secret=True)
    commands = parse_output(capsys.readouterr().out)
    registered = [c.data for c in commands if c.event == "setsecret"]
    assert registered[:2] == ["line-one-secret", "line-two-secret"]
    assert not {"}", "--", "ab"} & set(registered)


# --- everything a script prints is inert (cli.entry runs it inside ado.inert_output) ---------------------------

LIVE = re.compile(r"##(vso)?\[", re.IGNORECASE)


def test_inert_stream_neutralises_a_command_printed_in_pieces():
    target = io.StringIO()
    stream = ado.InertStream(target)
    pieces = [
        "value: #",
        "#",
        "v",
        "S",
        "o[task.setvariable variable=x]1\n",
        "##",
        "[error]fake\n",
        "a ##vso",
        "[x.y]z",
    ]
    for piece in pieces:
        stream.write(piece)
    stream.write("\nends with ##")
    stream.release()
    text = target.getvalue()
    assert not LIVE.search(text) and parse_output(text) == []
    # Only zero-width spaces were added, and nothing held back was lost.
    assert text.replace("\u200b", "") == "".join(pieces) + "\nends with ##"


def test_only_ados_own_commands_are_live_inside_inert_output(pipeline, capsys):
    outer = sys.stdout
    with ado.inert_output():
        assert isinstance(sys.stdout, ado.InertStream) and isinstance(sys.stderr, ado.InertStream)
        print("config value ##vso[task.complete result=Failed]x")
        print("##", end="")  # held back, then the command starts the same line: still ours that is parsed
        ado.set_variable("v", "##vso[task.setvariable variable=injected]1")
        print("warning ##[error]x", file=sys.stderr)
        ado.log_issue("warning", "quotes ##vso[task.setvariable variable=injected]2")
        print("last #", end="")
    assert sys.stdout is outer
    captured = capsys.readouterr()
    commands = parse_output(captured.out + captured.err)
    assert [(c.event, c.properties.get("variable"), c.data) for c in commands] == [
        ("setvariable", "v", "##vso[task.setvariable variable=injected]1"),  # data round-trips exactly
        ("logissue", None, ado.neutralise("quotes ##vso[task.setvariable variable=injected]2")),
    ]
    assert captured.out.endswith("last #") and not LIVE.search(captured.err)
    plain = [line for line in captured.out.splitlines() if not line.lstrip("#").startswith("vso[task.")]
    assert plain and not any(LIVE.search(line) for line in plain)
