"""The local workspace, an emulator of the Databricks REST API. Imports point one way, top to bottom:

``server`` (HTTP, request log, admin; uses ``faults`` and ``identity``) → ``emulator`` (the composed emulator and
its dispatch) → one module per API family (``workspace_api``, ``files``, ``compute``, ``jobs`` → ``job_runs`` →
``run_state``) → ``state`` (stores, persistence, the protocol the families are typed against) → ``wire`` (wire
conventions). ``runner`` is the run subprocess. Entry script: ci_cd_scripts/local_workspace.py.
"""
