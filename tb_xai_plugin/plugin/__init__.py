"""The TensorBoard side: loader, catalog, workers, caches and routes."""
