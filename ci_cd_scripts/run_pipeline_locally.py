"""Run an Azure Pipelines YAML pipeline on this machine: CI and every CD stage, against a local workspace.

    python ci_cd_scripts/run_pipeline_locally.py                       # pipelines/azure-pipelines.yml, all stages
    python ci_cd_scripts/run_pipeline_locally.py --list                # the expanded plan; runs nothing
    python ci_cd_scripts/run_pipeline_locally.py --stage ci --param pythonVersion=3.12

The pipeline is compiled as Azure DevOps does (templates, typed parameters, ${{ }} expressions), then each job's
steps run in fresh processes with the pipeline's and the predefined variables; their logging commands are applied
as the agent applies them (variables, secrets masked as ***, output variables, issues, results). Tasks run as local
stand-ins (UsePythonVersion, Cache, PublishTestResults, Publish/DownloadPipelineArtifact, AzureCLI without a login,
checkout: self); anything the runner cannot do faithfully stops the run before its first step with
"error: FILE:LINE: <construct> is not supported by the local runner".

--workspace local (the default) starts one local workspace (ci_cd_scripts/local_workspace.py) for the run, state
under --workdir/workspace, and points every CD step at it through DATABRICKS_HOST and the secret variable
databricks-token; --workspace URL uses a real workspace (credentials from the environment).
Exit code: 0 the pipeline succeeded, 1 it failed, 2 bad input (the pipeline, a flag, a file).
Details: README, "Running the pipeline locally".
"""

from __future__ import annotations

import sys
from pathlib import Path

from cicdkit import cli
from local_cloud.pipeline import session


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("run_pipeline_locally.py", __doc__)
    parser.add_argument(
        "pipeline", nargs="?", default="pipelines/azure-pipelines.yml", metavar="PIPELINE_YAML", help="the pipeline"
    )
    parser.add_argument("--stage", action="append", default=[], metavar="NAME", help="run only this stage (repeatable)")
    parser.add_argument("--workspace", default="local", help="local (default) or the URL of a real workspace")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a pipeline parameter")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a pipeline variable")
    parser.add_argument("--secrets-file", type=Path, default=None, help='secret variables: JSON {"name": "value"}')
    parser.add_argument("--branch", default=None, help="Build.SourceBranch (default: the checkout's branch)")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where jobs run and state lives (default out/local-run)"
    )
    parser.add_argument(
        "--faults", default=None, metavar="SPEC", help="fault injection into the local workspace (local_workspace.py)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for probabilistic --faults")
    parser.add_argument("--keep-going", action="store_true", help="after a failed job, still run what does not need it")
    parser.add_argument("--list", action="store_true", help="print the expanded plan and run nothing")
    args = parser.parse_args(argv)
    request = session.Request(
        pipeline=Path(args.pipeline),
        stages=args.stage,
        workspace=args.workspace,
        params=dict(cli.parse_assignment(text, "--param") for text in args.param),
        variables=dict(cli.parse_assignment(text, "--var") for text in args.var),
        secrets_file=args.secrets_file,
        branch=args.branch,
        workdir=args.workdir,
        keep_going=args.keep_going,
        list_only=args.list,
        faults=args.faults,
        seed=args.seed,
        log=lambda line: print(line, flush=True),
    )
    return session.run(request)


if __name__ == "__main__":
    sys.exit(main())
