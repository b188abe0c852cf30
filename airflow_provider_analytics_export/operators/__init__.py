"""Export operators, one module per API, all built on :class:`~.base.BaseExportOperator`."""
