"""Every attribution method, one module each; importing this package registers them all."""
