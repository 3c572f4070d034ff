"""Tracks: an artist's submissions, their audio in object storage, and their review."""
