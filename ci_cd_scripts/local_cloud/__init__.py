"""Local stand-ins of the cloud, for local runs, tests and benchmarks: the local workspace (a Databricks REST API
emulator, ``local_cloud.workspace``). Not shipped in the deployment artifact; the CD stages never import it."""
