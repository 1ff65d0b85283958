"""Errors in the API's real envelope: `{"error": {code, message, details}, "request_id"}`."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised by handlers; the server turns it into the documented error response."""

    def __init__(self, status: int, code: str, message: str,
                 details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details},
                "request_id": request_id}


def bad_param(name: str, reason: str) -> ApiError:
    return ApiError(400, "invalid_parameter", f"invalid query parameter '{name}': {reason}",
                    [{"field": name, "reason": reason}])


def not_found(kind: str, rid: str) -> ApiError:
    return ApiError(404, "not_found", f"{kind} '{rid}' does not exist")


def invalid(field: str, reason: str) -> ApiError:
    return ApiError(422, "validation_error", f"'{field}' {reason}",
                    [{"field": field, "reason": reason}])
