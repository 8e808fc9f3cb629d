"""`tb-xai precompute`: maps, predictions and suggestion statistics for runs x checkpoints x methods x
samples, computed by an Apache Beam pipeline into each run's result store (plugin/result_store.py),
where TensorBoard finds them before it asks a worker.

`plan` lists the work from the logdir's manifests; `inline` computes one work item with the
plugin's own service, catalog and worker code run in-process, so every result lands under the cache
key the plugin looks up; `pipeline` is the Beam pipeline around them (any runner). See docs/precompute.md.
"""
