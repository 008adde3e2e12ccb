"""The library the pipeline steps share: config, Azure DevOps logging, the Databricks client, and one module per
concern behind the steps (README, "Scripts"). Steps import it as ``from cicdkit import ado``; nothing here imports
a step or the local stand-ins in ``local_cloud``."""
