"""The demo: small Fashion-MNIST models logged with tb-xai, and ImageNet models imported with its CLI."""
