"""Signing in with an external OpenID Connect provider, and the identities linked to accounts."""
