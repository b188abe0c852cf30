"""The HTTP transport under every hook.

``client`` sends (sync and async, one answer path), ``retry`` decides when to send again,
``errors`` turns a failed call into an exception, ``responses`` reads an answer's fields,
rows and files, ``limits``/``redis_limits`` hold an account's client-side limits,
``downloads`` checks a download link and copies the file into the caller's sink, and
``loop_sessions`` shares one aiohttp session per event loop among triggers.
"""
