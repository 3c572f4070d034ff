"""Second factors: TOTP, recovery codes, and the challenge that sign-in's second step completes."""
