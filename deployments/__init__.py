"""Ray Serve deployments and the HTTP ingress: thin, config-driven wrappers over `pipeline`."""
