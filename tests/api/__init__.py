"""Tests of the HTTP API (deployments.api) over a fake backend, one module for each module of the package."""
