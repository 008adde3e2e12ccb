"""The local pipeline runner: Azure Pipelines YAML run on this machine (README, "Running the pipeline locally").

Imports point one way, top to bottom: ``engine`` (stages, jobs, results; uses ``report``) → ``agent`` (one step in
a process; uses ``tasks``) → ``plan`` (the expanded pipeline as stages → jobs → steps) → ``templates``
(compile-time ``${{ }}``, templates, ``parameters``) → ``variables`` (runtime variables, ``$(macro)``, the masker)
→ ``expressions`` (the expression language of ``${{ }}``, ``$[ ]`` and ``condition:``) → ``source`` (YAML with
file and line marks, the one error type). ``decoder`` reads logging commands. Entry script:
ci_cd_scripts/run_pipeline_locally.py.
"""
