"""What operators probe: liveness, readiness and Prometheus metrics."""
