"""Operations: liveness, readiness and metrics endpoints."""
