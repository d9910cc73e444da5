"""Grafana dashboards generated from Python (dashboards.py) and their provisioning files."""
