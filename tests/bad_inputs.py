"""What the bad-input tables share: a case and the problem document every refusal must be."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import PROBLEM_JSON

# The problem type each status has unless a case names another.
DEFAULT_CODE = {
    400: "malformed-request",
    402: "insufficient-credits",
    404: "wallet-not-found",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-request",
}


def case(
    name: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str | tuple[str, ...] | None = None,
    *,
    headers: dict[str, Any] | None = None,
    query: str | None = None,
    code: str | tuple[str, ...] | None = None,
    marks: Any = (),
    as_: dict[str, str] | None = None,
) -> Any:
    """One bad request and what must come back: ``field`` names a 422's offending field (any
    of a tuple), ``code`` the problem type (any of a tuple; else the status's usual one).
    ``as_``: the caller's claims, when not the test's usual caller (see :func:`sent_as`)."""
    codes = code if isinstance(code, tuple) else (code or DEFAULT_CODE[status],)
    fields = field if isinstance(field, tuple) else (field,)
    expect = {"status": status, "fields": fields, "codes": codes}
    request = {"method": method, "path": path, "body": body, "headers": headers, "query": query}
    if as_ is not None:
        request["as_"] = as_
    return pytest.param(request, expect, id=name, marks=marks)


def sent_as(request: dict[str, Any]) -> dict[str, Any]:
    """The ``api`` keywords of a case's caller: ``{"as_": claims}`` when the case names one,
    else none (the fixture's default caller)."""
    return {"as_": request["as_"]} if "as_" in request else {}


def names(problem: dict[str, Any], field: str) -> bool:
    """Whether a 422 problem's ``errors`` name ``field`` (a whole-body error names it in its
    message)."""
    errors = problem.get("errors")
    assert isinstance(errors, list) and errors, problem
    assert all({"field", "message"} <= e.keys() for e in errors), problem
    return any(
        e["field"] == field or (e["field"] == "body" and field in e["message"]) for e in errors
    )


def check_problem(
    response: tuple[int, dict[str, str], Any], expect: dict[str, Any]
) -> dict[str, Any]:
    """The response is the expected refusal, as an RFC 9457 problem document."""
    status, headers, problem = response
    assert status == expect["status"], problem
    assert status < 500
    assert headers["content-type"] == PROBLEM_JSON
    assert {"type", "title", "status", "detail"} <= problem.keys(), problem
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    assert problem["type"] in [f"/problems/{c}" for c in expect["codes"]], problem
    if status == 422:
        assert any(names(problem, f) for f in expect["fields"] if f), problem
    return dict(problem)
