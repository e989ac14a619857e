"""The multi-device worker pool: `PersistentWorkerPool` (processes and their models) and
`BatchQueueManager` (shards to free workers, results back in order, retries)."""
