"""Report routes: the activity log (JSON and CSV), the usage summary and series, an
organisation's usage (docs/reports.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler import Response

from credit_meter.api.activity_models import (
    TransactionOut,
    TransactionsCsvQuery,
    TransactionsOut,
    TransactionsQuery,
)
from credit_meter.api.routes.base import (
    current_grant,
    json_response,
    no_query,
    router,
    valid_org,
    valid_wallet,
)
from credit_meter.core.wallets import Entry

if TYPE_CHECKING:
    from credit_meter.reports.reports import Reports


def _reports() -> Reports:
    from credit_meter.reports.reports import Reports

    return Reports()


def _activity(wallet_id: str, query: TransactionsQuery) -> tuple[list[Entry], str | None]:
    from credit_meter.reports.reports import ActivityFilter

    member = current_grant().member_filter(query.member_id)  # a member: their own activity only
    where = ActivityFilter(query.day, query.type, member, query.feature)
    return _reports().activity(valid_wallet(wallet_id), where, query.limit, query.cursor)


@router.get("/v1/wallets/<wallet_id>/transactions")
def transactions(wallet_id: str) -> Response[Any]:
    query = TransactionsQuery.model_validate(router.current_event.query_string_parameters or {})
    entries, cursor = _activity(wallet_id, query)
    out = TransactionsOut(items=[TransactionOut.of(e) for e in entries], next_cursor=cursor)
    return json_response(200, out)


@router.get("/v1/wallets/<wallet_id>/transactions.csv")
def transactions_csv(wallet_id: str) -> Response[Any]:
    from credit_meter.api.report_models import transactions_csv as to_csv

    query = TransactionsCsvQuery.model_validate(router.current_event.query_string_parameters or {})
    entries, cursor = _activity(wallet_id, query)
    headers = {"Content-Disposition": f'attachment; filename="{wallet_id}-transactions.csv"'}
    if cursor is not None:  # the next page: the same query from the cursor
        params = {**(router.current_event.query_string_parameters or {}), "cursor": cursor}
        # relative to the request's own path, whatever stage or base path the client used
        headers["Link"] = f'<?{urlencode(params)}>; rel="next"'
        headers["X-Next-Cursor"] = cursor
    return Response(
        status_code=200,
        content_type="text/csv; charset=utf-8",
        body=to_csv(entries),
        headers=headers,
    )


@router.get("/v1/wallets/<wallet_id>/usage/summary")
def usage_summary(wallet_id: str) -> Response[Any]:
    from credit_meter.api.report_models import SummaryOut

    no_query()
    return json_response(200, SummaryOut.of(_reports().summary(valid_wallet(wallet_id))))


@router.get("/v1/wallets/<wallet_id>/usage")
def usage_series(wallet_id: str) -> Response[Any]:
    from credit_meter.api.report_models import SeriesOut, SeriesQuery

    query = SeriesQuery.model_validate(router.current_event.query_string_parameters or {})
    series = _reports().series(
        valid_wallet(wallet_id), query.granularity, query.from_, query.to, query.group_by
    )
    return json_response(200, SeriesOut.of(series))


@router.get("/v1/orgs/<org_id>/usage")
def org_usage(org_id: str) -> Response[Any]:
    from credit_meter.api.report_models import OrgUsageOut, OrgUsageQuery

    query = OrgUsageQuery.model_validate(router.current_event.query_string_parameters or {})
    return json_response(
        200, OrgUsageOut.of(_reports().org_usage(valid_org(org_id), query.from_, query.to))
    )
