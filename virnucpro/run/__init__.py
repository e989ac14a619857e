"""One input's run, from its validation to the last table and its manifest.

`inputs` (the first pass: `ValidatedInput`), `folder` (claiming the output folder: fresh,
resume or done; the resume key; a full disk in one line), `feed` (`ShardFeed`: the input's
shard tasks and their results merged into the tables), `finished` (run.json, the report, a
finished run taken up), `events` (`RunListener`: what a run tells its driver) and `input_run`
(`InputRun`, the one object both drivers drive: `pipeline.run_predict` one run after another,
the daemon's `JobStream` the runs of its jobs over one engine). Nothing is imported here: a
caller (the daemon's request handlers) loads only the modules it names and theirs.
"""
