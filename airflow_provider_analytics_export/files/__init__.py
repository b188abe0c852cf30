"""Files: the atomic writer, the declared schemas of the exports, record counters."""
