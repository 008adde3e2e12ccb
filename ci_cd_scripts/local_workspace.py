"""Local workspace: an emulator of the Databricks REST API, for local pipeline runs, tests and benchmarks.

Starts a threaded HTTP/1.1 server (keep-alive, TCP_NODELAY) and prints its URL (http://HOST:PORT) as the
first line of stdout. Point databricks-sdk, our own client or curl at it with a bearer token:

    python ci_cd_scripts/local_workspace.py --port 0 --time-scale 0.05
    python ci_cd_scripts/local_workspace.py --faults "path=*/dbfs/add-block,fault=503,times=2" --seed 7

The token is read from $LOCAL_WORKSPACE_TOKEN (default dapi-local-token); --token exists for throwaway
local tokens only. The server runs until SIGINT/SIGTERM; with --state-dir it keeps its state between runs.

Fault injection (--faults SPEC): rules separated by ';', each a ','-separated list of key=value:
  path=GLOB        fnmatch pattern on the URL path, e.g. */dbfs/put or /api/2.1/jobs/runs/* (default *)
  method=VERB      only this HTTP method (default any)
  fault=KIND       429, 500, 502, 503, 504 (JSON error body) reset (connection dropped with RST
                   before the call is served) or reset-after (served, then the answer dropped)
  rate=P           probability 0..1 per matching request, drawn from --seed (default 1)
  skip=N           let the first N matching requests through (default 0)
  times=N          fire at most N times (default unlimited)
  retry_after=S    Retry-After seconds for 429/503 (default 1 for 429, none otherwise; 'none' omits it)
Example: "path=*/dbfs/add-block,fault=503,skip=1,times=2; path=*/jobs/runs/get,fault=429,rate=0.1"
Rate limits (--rate-limit GLOB=N/s or N/min, repeatable): one token bucket per rule (burst N), breaches
answer 429 REQUEST_LIMIT_EXCEEDED with Retry-After. Latency (--latency-ms L or GLOB=L, repeatable).
Faults, limits and latency apply to /api/ paths only.

Private admin surface (no auth): GET/DELETE /__local__/requests (request log; `unknown_endpoint`
marks a request the emulator has no API for), POST /__local__/reset,
POST /__local__/faults {"spec"}, POST /__local__/rate-limits {"limits": [...]}, POST /__local__/latency
{"latency_ms": ...}, POST /__local__/tokens {"token"}, POST /__local__/clusters {"clusters": [...]},
POST /__local__/cluster-state {"cluster_id", "state"}, POST /__local__/fail-next-start {"cluster_id", "code",
"message"}, POST /__local__/script-run {"notebook_path",
"result_state", "duration_seconds", "result", "error", "error_trace"}, GET /__local__/state.

Time: emulated durations (cluster start/restart/terminate, library install phases, run pending/terminating,
scripted run durations) are nominal seconds multiplied by --time-scale (0.01 = 100x faster, 0 = next poll).
A run subprocess always has a deadline (task/run timeout_seconds, else --run-timeout).

What it serves and what it does not model: README, "Local workspace", and local_cloud/workspace/emulator.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from cicdkit import cli
from cicdkit.errors import InputError, UsageError
from local_cloud.workspace.faults import parse_faults, parse_latency, parse_rate_limit
from local_cloud.workspace.server import LocalWorkspace
from local_cloud.workspace.state import load_cluster_seed
from local_cloud.workspace.wire import DEFAULT_TOKEN


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("local_workspace.py", __doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default 0)")
    parser.add_argument(
        "--token",
        default=None,
        help="valid PAT (default $LOCAL_WORKSPACE_TOKEN, else dapi-local-token); for throwaway local tokens only",
    )
    parser.add_argument(
        "--latency-ms",
        action="append",
        default=[],
        metavar="[GLOB=]MS",
        help="added latency for every /api/ endpoint, or for those matching GLOB; repeatable",
    )
    parser.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="GLOB=N/s",
        help="token-bucket rate limit (N/s or N/min) answering 429 + Retry-After; repeatable",
    )
    parser.add_argument("--faults", default=None, metavar="SPEC", help="fault injection rules (syntax above)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for probabilistic faults")
    parser.add_argument("--state-dir", default=None, help="persist the workspace in this folder (default: in memory)")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiply emulated durations (0.01 = 100x faster; default 1)"
    )
    parser.add_argument(
        "--clusters",
        default=None,
        metavar="SEED.json",
        help="seed clusters from a JSON list (default: two local clusters)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=600.0,
        help="deadline (s) of run subprocesses without timeout_seconds (default 600)",
    )
    parser.add_argument(
        "--service-principal",
        action="append",
        default=[],
        metavar="APP_ID",
        help="Entra application id already in the workspace (repeatable); others must send the Azure management headers",
    )
    parser.add_argument(
        "--azure-resource-id",
        default=None,
        help="Azure resource id the X-Databricks-Azure-Workspace-Resource-Id header must match",
    )
    parser.add_argument(
        "--client-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="close a connection idle or half-sent this long (default 120)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.client_timeout < float("inf"):
        raise UsageError("--client-timeout must be a positive number of seconds")
    if args.port < 0 or args.port > 65535:
        raise UsageError(f"--port {args.port} is not a valid port")
    if args.time_scale < 0:
        raise UsageError("--time-scale must be >= 0")
    for flag, check, values, example in (
        ("--faults", parse_faults, [args.faults], "path=*/clusters/*,fault=503,times=2"),
        ("--rate-limit", parse_rate_limit, args.rate_limit, "*/clusters/*=10/s"),
        ("--latency-ms", parse_latency, args.latency_ms, "50 or */workspace/*=50"),
    ):
        for value in values:
            try:
                check(value)
            except ValueError as error:
                raise UsageError(f"{flag}: {error}", hint=f"e.g. {flag} {example}") from None
    clusters: Any = None
    if args.clusters:
        try:
            clusters = load_cluster_seed(Path(args.clusters))
        except (OSError, ValueError) as error:
            raise InputError(
                f"cannot read cluster seed {args.clusters}: {error}", hint="pass a JSON list of cluster objects"
            ) from None
    token = args.token or os.environ.get("LOCAL_WORKSPACE_TOKEN") or DEFAULT_TOKEN
    try:
        workspace = LocalWorkspace(
            token=token,
            port=args.port,
            host=args.host,
            latency_ms=args.latency_ms,
            rate_limits=args.rate_limit,
            faults=args.faults,
            seed=args.seed,
            state_dir=args.state_dir,
            time_scale=args.time_scale,
            clusters=clusters,
            run_timeout=args.run_timeout,
            service_principals=args.service_principal,
            azure_resource_id=args.azure_resource_id,
            client_timeout=args.client_timeout,
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(
            f"cannot load state from {args.state_dir}: {error!r}", hint="fix or remove the folder"
        ) from None
    try:
        workspace.start()
    except OSError as error:
        raise InputError(
            f"cannot listen on {args.host}:{args.port}: {error.strerror or error}", hint="pick another --port"
        ) from None
    print(workspace.url, flush=True)
    workspace.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
