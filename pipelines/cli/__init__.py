"""The command line, ``python -m pipelines <command>``: :mod:`.main` builds the parser;
:mod:`.run` (local runs), :mod:`.cluster` (upload, submit, schedule, runs on KFP or Vertex AI)
and :mod:`.check` (the conformance check) hold the commands; ``watch`` and ``backfill`` are in
:mod:`pipelines.triggers`."""
