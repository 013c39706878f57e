"""Configuration: RFC 6728 JSON (goflowd form or RFC 7951) validated against the YANG modules."""
