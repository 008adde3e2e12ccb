"""The local workspace: ``server`` (state, persistence, HTTP server), one module per API family (``files``,
``compute``, ``jobs``), ``core`` (wire conventions) and ``runner`` (the run subprocess). Entry script:
ci_cd_scripts/local_workspace.py."""
