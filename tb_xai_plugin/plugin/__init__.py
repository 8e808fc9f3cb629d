"""The TensorBoard side: loader, catalog, workers, caches and routes.

    loader.py       the `tensorboard_plugins` entry point and the --xai_* flags (imports nothing heavy)
    xai_plugin.py   XaiPlugin: the routes of docs/http_api.md, thin: parse, call, respond
    parsing.py      validation of everything a client sends (400 / 413 with a message)
    catalog.py      runs from the data provider, checkpoints and sample sets from their manifests
    service.py      the compute routes' work: resolve, consult the cache, submit worker tasks, collect
    suggestions.py  the suggestion panel's per-sample statistics (pure numpy), per label on a multi-label head
    applicability.py  the picker's answer: which methods apply to a checkpoint and which layers were folded, from a worker's loaded model, cached
    cache.py        results in memory (byte budget, LRU) and on disk (atomic files)
    workers.py      the pool of spawned worker processes, merged tasks, progress, death -> 503
    worker_main.py  the worker process: graph mode, the engine, LRU of loaded models
    jobs.py         progress and cancellation per client request_id
    encoding.py     PNG samples and base64 float32 heatmaps
"""
