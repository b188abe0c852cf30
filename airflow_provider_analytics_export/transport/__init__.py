"""The HTTP transport under every hook.

``account`` describes an API account (the hooks build it; nothing here imports them),
``client`` sends to it (sync and async, one answer path), ``retry`` decides when to send again,
``errors`` turns a failed call into an exception, ``responses`` reads an answer's fields,
rows and files, ``limits``/``redis_limits`` hold an account's client-side limits,
``downloads`` checks a download link and copies the file into the caller's sink, and
``loop_sessions`` shares one aiohttp session per event loop among triggers.
"""
