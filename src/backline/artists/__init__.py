"""Artist applications: a person asks to become an artist, and staff decide."""
