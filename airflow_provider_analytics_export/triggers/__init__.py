"""Triggers that let sensors and operators wait without holding a worker slot."""
