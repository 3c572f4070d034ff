"""The security audit log: who did what to which account, from where."""
