"""Tax details: an artist's W-9 (TIN and certification), kept encrypted, shown masked."""
