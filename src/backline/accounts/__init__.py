"""Accounts: people, their roles and credentials."""
