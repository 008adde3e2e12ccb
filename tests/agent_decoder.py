"""The agent's logging-command parser, for the tests: the product's own (local_cloud/pipeline/decoder.py, which the
local pipeline runner uses), so a test of a step and a local pipeline run read commands the same way."""

from __future__ import annotations

import sys

from helpers import SCRIPTS

if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))

from local_cloud.pipeline.decoder import Command, parse_line, parse_output, unescape

__all__ = ["Command", "parse_line", "parse_output", "unescape"]
