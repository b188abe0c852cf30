"""One hook per API, all built on :class:`~.base.AnalyticsApiHook`."""
