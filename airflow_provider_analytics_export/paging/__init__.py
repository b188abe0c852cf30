"""Paging: walking an API's pages and checking that every row arrives exactly once."""
