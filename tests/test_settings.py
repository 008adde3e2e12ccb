"""The settings of a CD step: each value from its flag, else the target's deploy section, else the default; the
parse-time checks with their messages; and the client `settings.connect` builds from them."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from cicdkit import cli, settings
from cicdkit.errors import UsageError
from cicdkit.settings import DEFAULT_CONCURRENCY, DEFAULT_STEP_SECONDS, Settings

DEPLOY = {
    "concurrency": 3,
    "timeout_seconds": 60,
    "clusters": ["c-deploy-1", "c-deploy-2"],
    "notebooks_path": "/Shared/from-config",
    "init_script_path": "/Volumes/main/cfg/init.sh",
}


def cluster_step_args(*argv: str):
    """The flags of a cluster step (attach_init_script.py, install_libraries.py) plus the other steps' options."""
    parser = cli.parser("step.py", "A step.")
    cli.add_cluster_args(parser, purpose="test")
    parser.add_argument("workspace_dir", nargs="?")
    parser.add_argument("--script")
    parser.add_argument("--concurrency", type=int, default=None)
    cli.add_step_args(parser)
    return parser.parse_args(list(argv))


def config(**deploy):
    return SimpleNamespace(deploy=deploy)


def usage_error(args, **kwargs) -> UsageError:
    with pytest.raises(UsageError) as caught:
        Settings.from_args(args, **kwargs)
    return caught.value


# ---- precedence: flag > deploy section > default -----------------------------------------------------------------


def test_flags_beat_the_deploy_section():
    args = cluster_step_args(
        "/Shared/from-flag",
        "--script",
        "/Workspace/flag.sh",
        "--concurrency",
        "5",
        "--timeout",
        "7",
        "--cluster-id",
        "c-flag",
    )
    step = Settings.from_args(args, config=config(**DEPLOY))
    assert (step.concurrency, step.timeout, step.cluster_ids) == (5, 7.0, ("c-flag",))
    assert (step.notebooks_path, step.init_script_path) == ("/Shared/from-flag", "/Workspace/flag.sh")


def test_the_deploy_section_beats_the_defaults():
    step = Settings.from_args(cluster_step_args(), config=config(**DEPLOY))
    assert (step.concurrency, step.timeout, step.cluster_ids) == (3, 60.0, ("c-deploy-1", "c-deploy-2"))
    assert (step.notebooks_path, step.init_script_path) == ("/Shared/from-config", "/Volumes/main/cfg/init.sh")
    assert dict(step.deploy) == DEPLOY


def test_without_flags_or_config_the_defaults_apply():
    step = Settings.from_args(cluster_step_args())
    assert (step.concurrency, step.timeout, step.cluster_ids) == (DEFAULT_CONCURRENCY, float(DEFAULT_STEP_SECONDS), ())
    assert (step.config, dict(step.deploy), step.notebooks_path, step.init_script_path) == (None, {}, None, None)
    assert (DEFAULT_CONCURRENCY, DEFAULT_STEP_SECONDS, cli.DEFAULT_STEP_SECONDS) == (8, 1200, 1200)


def test_a_config_without_the_keys_falls_back_to_the_defaults():
    step = Settings.from_args(cluster_step_args(), config=config(clusters=["c-1"]))
    assert (step.concurrency, step.timeout, step.cluster_ids) == (
        DEFAULT_CONCURRENCY,
        float(DEFAULT_STEP_SECONDS),
        ("c-1",),
    )


def test_each_value_falls_back_on_its_own():
    step = Settings.from_args(cluster_step_args("--timeout", "9"), config=config(concurrency=2))
    assert (step.timeout, step.concurrency) == (9.0, 2)


def test_flags_taken_as_given():
    args = cluster_step_args(
        "--host", "https://adb-1.azuredatabricks.net", "--auth", "pat", "--dry-run", "-v", "--poll-interval", "0.5"
    )
    step = Settings.from_args(args, config=config(**DEPLOY))
    assert (step.host, step.auth, step.dry_run, step.verbose, step.poll_interval) == (
        "https://adb-1.azuredatabricks.net",
        "pat",
        True,
        True,
        0.5,
    )
    plain = Settings.from_args(cluster_step_args())
    assert (plain.host, plain.auth, plain.dry_run, plain.verbose, plain.poll_interval) == (
        None,
        None,
        False,
        False,
        None,
    )


def test_repeated_cluster_ids_are_read_once_in_order():
    args = cluster_step_args("--cluster-id", "b", "--cluster-id", "a", "--cluster-id", "b")
    assert Settings.from_args(args).cluster_ids == ("b", "a")
    assert Settings.from_args(cluster_step_args(), config=config(clusters=["x", "x", "y"])).cluster_ids == ("x", "y")


def test_a_step_without_timeout_has_no_deadline():
    """fetch_secrets.py has no --timeout: its settings carry none, whatever the config says."""
    parser = cli.parser("step.py", "A step.")
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args([])
    assert Settings.from_args(args, config=config(timeout_seconds=5)).timeout is None
    assert Settings.from_args(args).concurrency == DEFAULT_CONCURRENCY


def test_settings_are_frozen_and_so_is_their_deploy_section():
    step = Settings.from_args(cluster_step_args(), config=config(**DEPLOY))
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.concurrency = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        step.deploy["concurrency"] = 1  # type: ignore[index]


def test_step_settings_read_the_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text(
        '{"bundle": {"name": "demo"}, "deploy": {"concurrency": 4, "timeout_seconds": 30}, '
        '"targets": {"dev": {"default": true}}}'
    )
    step = cli.step_settings(cluster_step_args())
    assert (step.config.target, step.concurrency, step.timeout) == ("dev", 4, 30.0)
    assert cli.step_settings(cluster_step_args("--timeout", "5")).timeout == 5.0


# ---- the parse-time checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("given, shown", [("0", "0"), ("-3", "-3"), ("inf", "inf"), ("nan", "nan")])
def test_a_timeout_that_is_not_a_positive_finite_number_is_refused(given, shown):
    error = usage_error(cluster_step_args("--timeout", given))
    assert error.message == f"--timeout must be a positive number of seconds, not {shown}"


def test_a_timeout_from_the_config_is_checked_too():
    error = usage_error(cluster_step_args(), config=config(timeout_seconds=-1))
    assert error.message == "--timeout must be a positive number of seconds, not -1"


@pytest.mark.parametrize("given", ["0", "-1"])
def test_a_concurrency_below_one_is_refused(given):
    assert usage_error(cluster_step_args("--concurrency", given)).message == "--concurrency must be at least 1"


@pytest.mark.parametrize("given", ["0", "-0.5"])
def test_a_poll_interval_not_above_zero_is_refused(given):
    error = usage_error(cluster_step_args("--cluster-id", "c", "--poll-interval", given))
    assert error.message == "--timeout and --poll-interval must be positive"


@pytest.mark.parametrize(
    "name, message, hint",
    [
        ("cluster_ids", "no cluster given", "pass --cluster-id or set deploy.clusters in the config"),
        ("notebooks_path", "WORKSPACE_DIR is missing", "pass it, or set deploy.notebooks_path in the config"),
        ("init_script_path", "no init script given", "pass --script or set deploy.init_script_path in the config"),
    ],
)
def test_a_required_value_with_neither_flag_nor_deploy_key_is_refused(name, message, hint):
    error = usage_error(cluster_step_args(), require=(name,))
    assert (error.message, error.hint) == (message, hint)
    step = Settings.from_args(cluster_step_args())  # not required at parse time: asked for later
    with pytest.raises(UsageError) as caught:
        step.required(name)
    assert (caught.value.message, caught.value.hint) == (message, hint)
    configured = Settings.from_args(cluster_step_args(), config=config(**DEPLOY), require=(name,))
    assert configured.required(name) == getattr(configured, name) and configured.required(name)


def test_the_checks_come_in_the_order_the_steps_made_them():
    """--concurrency, then --timeout, then the required values, then --poll-interval (as cluster_targets did)."""
    args = cluster_step_args("--concurrency", "0", "--timeout", "0", "--poll-interval", "0")
    assert usage_error(args, require=("cluster_ids",)).message == "--concurrency must be at least 1"
    args = cluster_step_args("--timeout", "0", "--poll-interval", "0")
    assert usage_error(args, require=("cluster_ids",)).message.startswith("--timeout must be a positive number")
    args = cluster_step_args("--poll-interval", "0")
    assert usage_error(args, require=("cluster_ids",)).message == "no cluster given"


# ---- connect -----------------------------------------------------------------------------------------------------


def captured_connect(monkeypatch) -> dict:
    from cicdkit import dbclient

    seen: dict = {}
    monkeypatch.setattr(dbclient, "connect", lambda **kwargs: seen.update(kwargs) or "client")
    return seen


def test_connect_passes_every_setting_by_keyword(monkeypatch):
    from cicdkit import dbclient

    seen = captured_connect(monkeypatch)
    cfg = config(**DEPLOY)
    args = cluster_step_args("--host", "https://h.example", "--auth", "pat", "--dry-run", "--timeout", "9")
    assert settings.connect(Settings.from_args(args, config=cfg)) == "client"
    assert seen == {
        "host": "https://h.example",
        "auth": "pat",
        "config": cfg,
        "concurrency": 3,
        "poll_seconds": dbclient.DEFAULT_POLL_SECONDS,
        "read_only": True,
        "step_timeout": 9.0,
    }


def test_connect_takes_an_explicit_concurrency_over_the_settings(monkeypatch):
    seen = captured_connect(monkeypatch)
    settings.connect(Settings.from_args(cluster_step_args("--concurrency", "5")), concurrency=2)
    assert seen["concurrency"] == 2
    settings.connect(Settings.from_args(cluster_step_args("--concurrency", "5")))
    assert seen["concurrency"] == 5


@pytest.mark.parametrize("poll_interval, expected", [("0.05", (0.05, 0.05)), ("4", (1.0, 4.0)), ("30", (1.0, 30.0))])
def test_the_poll_interval_caps_the_wait_between_polls(monkeypatch, poll_interval, expected):
    from cicdkit import dbclient

    seen = captured_connect(monkeypatch)
    settings.connect(Settings.from_args(cluster_step_args("--poll-interval", poll_interval)))
    assert dbclient.DEFAULT_POLL_SECONDS == (1.0, 10.0)
    assert seen["poll_seconds"] == expected


def test_connect_builds_a_real_client_with_the_steps_deadline(monkeypatch):
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-settings-test")
    monkeypatch.delenv("DATABRICKS_AUTH_TYPE", raising=False)
    args = cluster_step_args(
        "--host", "http://127.0.0.1:9", "--auth", "pat", "--dry-run", "--timeout", "30", "--poll-interval", "2"
    )
    with settings.connect(Settings.from_args(args, config=config(concurrency=6))) as client:
        assert (client.concurrency, client.read_only, client.poll_seconds, client.step_timeout) == (
            6,
            True,
            (1.0, 2.0),
            30.0,
        )
        assert 0 < client.time_left() <= 30
