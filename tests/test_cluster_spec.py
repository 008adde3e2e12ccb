"""Pure cluster-spec edits behind attach_init_script.py: keep every editable field, no duplicates, no DBFS."""

from __future__ import annotations

import pytest

from cicdkit import cluster_spec
from cicdkit.errors import InputError

DETAILS = {
    "cluster_id": "c1",
    "cluster_name": "dev",
    "spark_version": "15.4.x-scala2.12",
    "node_type_id": "Standard_DS3_v2",
    "num_workers": 2,
    "autoscale": {"min_workers": 1, "max_workers": 4},
    "spark_conf": {"spark.x": "1"},
    "custom_tags": {"team": "data"},
    "init_scripts": [{"volumes": {"destination": "/Volumes/c/s/v/first.sh"}}],
    "state": "RUNNING",
    "default_tags": {"Vendor": "Databricks"},
    "start_time": 1,
}


def test_attach_keeps_every_editable_field_and_appends_in_order():
    entry = cluster_spec.init_script_entry("workspace", "/Workspace/Shared/ci-cd/init.sh")
    spec, changed = cluster_spec.with_init_script(DETAILS, entry)
    assert changed
    assert spec["init_scripts"] == [
        {"volumes": {"destination": "/Volumes/c/s/v/first.sh"}},
        {"workspace": {"destination": "/Workspace/Shared/ci-cd/init.sh"}},
    ]
    for key in ("cluster_name", "spark_version", "node_type_id", "autoscale", "spark_conf", "custom_tags"):
        assert spec[key] == DETAILS[key]
    # Read-only fields are not sent back; num_workers goes when autoscale is set.
    assert not {"state", "default_tags", "start_time", "num_workers"} & set(spec)


def test_attach_twice_is_a_no_op_including_the_workspace_prefix_spelling():
    details = dict(DETAILS, init_scripts=[{"workspace": {"destination": "/Shared/ci-cd/init.sh"}}])
    spec, changed = cluster_spec.with_init_script(
        details, cluster_spec.init_script_entry("workspace", "/Workspace/Shared/ci-cd/init.sh")
    )
    assert not changed and spec["init_scripts"] == details["init_scripts"]


def test_volume_destination_and_dbfs_refused():
    assert cluster_spec.init_script_entry("volumes", "/Volumes/c/s/v/i.sh") == {
        "volumes": {"destination": "/Volumes/c/s/v/i.sh"}
    }
    with pytest.raises(InputError, match="end-of-life"):
        cluster_spec.init_script_entry("dbfs", "dbfs:/databricks/init/x.sh")
