"""Deployment tests: proxies, notebooks, remote logdirs (a package, so that its shared TensorBoard stops when they end)."""
