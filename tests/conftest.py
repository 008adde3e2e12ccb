"""Shared fixtures. Fixture modules of each area are imported here so every test file can use them."""

from __future__ import annotations

import sys

from helpers import SCRIPTS

# Appended: the steps' own folder, so tests import `cicdkit` and `local_cloud` as the steps do.
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))
from databricks_fixtures import *  # noqa: F403
from deploy_fixtures import *  # noqa: F403
from init_script_fixtures import *  # noqa: F403
from jobs_fixtures import *  # noqa: F403
from keyvault_fixtures import *  # noqa: F403
from repo_fixtures import *  # noqa: F403
from workspace_fixtures import *  # noqa: F403
