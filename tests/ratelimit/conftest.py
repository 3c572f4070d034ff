"""The rate-limit tests use the root fixtures (`own_redis` among them)."""
