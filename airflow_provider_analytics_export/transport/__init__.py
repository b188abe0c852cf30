"""The HTTP transport under every hook: sending, retrying, client-side limits."""
