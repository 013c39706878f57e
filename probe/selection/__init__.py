"""Selection Process: the RFC 5475 / RFC 6728 selectors, applied in order to packet batches."""
