"""Passkeys (WebAuthn): registered, named and removed by their owner, and used to sign in."""
