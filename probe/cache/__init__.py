"""Cache (Metering Process): flow records kept and expired per RFC 6728 cache type."""
