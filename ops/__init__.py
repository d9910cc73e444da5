"""Operations as code: the metric contract, Grafana dashboards, Prometheus configuration."""
