"""OpenLineage for exports: the API endpoint read, the object written, and how much was written.

The OpenLineage provider is optional: it is imported inside
:meth:`ExportLineageMixin.get_openlineage_facets_on_complete`, which Airflow only calls
when that provider is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import Asset, ObjectStoragePath

from airflow_provider_analytics_export.hooks.base import AnalyticsApiHook

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage


def source_dataset(operator: Any) -> tuple[str, str] | None:
    """(namespace, name) of the endpoint an export operator reads: its connection's base URL and path.

    Operators declare ``lineage_source = (HookClass, endpoint)``. Without the connection
    (e.g. lineage computed elsewhere) the API's default host is used.
    """
    from airflow_provider_analytics_export.compat import AirflowNotFoundException

    source: tuple[type[AnalyticsApiHook], str] | None = getattr(operator, "lineage_source", None)
    if source is None:
        return None
    hook_class, endpoint = source
    conn_id = getattr(operator, hook_class.conn_name_attr, None) or hook_class.default_conn_name
    try:
        base_url = hook_class(conn_id).base_url
    except AirflowNotFoundException:
        base_url = hook_class.default_host or conn_id
    return base_url, endpoint


def destination_dataset(destination: str, conn_id: str | None) -> Dataset:
    """The written object as an OpenLineage dataset, named by the providers' asset converters if any."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset

    translated = translate_airflow_asset(Asset(uri=destination), None)
    if translated is not None:
        return Dataset(namespace=translated.namespace, name=translated.name)
    path = ObjectStoragePath(destination, conn_id=conn_id)
    return Dataset(namespace=path.namespace, name=path.key)


class ExportLineageMixin:
    """``get_openlineage_facets_on_complete`` for operators with ``destination``/``destination_conn_id``.

    Input: the API endpoint (namespace = the connection's base URL, e.g.
    ``https://api.browsee.io``; name = the endpoint path). Output: the rendered destination,
    with the row count and size written (``outputStatistics``) once the export finished.
    """

    destination: str
    destination_conn_id: str | None
    #: (hook class, endpoint path) the export reads, for the lineage input dataset.
    lineage_source: ClassVar[tuple[type[AnalyticsApiHook], str] | None] = None
    #: The finished export's summary (``uri``, ``rows``, ``bytes``...), set by the post-execute hook.
    export_summary: dict[str, Any] | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """Lineage of the finished export (called by the OpenLineage listener, if installed)."""
        from airflow.providers.common.compat.openlineage.facet import (
            InputDataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage

        source = source_dataset(self)
        inputs = [InputDataset(namespace=source[0], name=source[1])] if source else []
        summary = self.export_summary or {}
        output = destination_dataset(str(summary.get("uri") or self.destination), self.destination_conn_id)
        facets: dict[str, Any] = {}
        if summary.get("rows") is not None:
            facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
                rowCount=summary["rows"], size=summary.get("bytes")
            )
        return OperatorLineage(
            inputs=inputs,
            outputs=[OutputDataset(namespace=output.namespace, name=output.name, outputFacets=facets)],
        )
