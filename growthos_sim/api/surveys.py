"""Surveys: CRUD, activation, responses, stats."""

from __future__ import annotations

from ..generate import new_survey
from ..routing import Request, Response, handler
from .common import apply_patch, get, list_table, now, ok, segment_ref

_FIELDS = ("name", "question", "follow_up", "trigger", "frequency_cap", "status")


def _norm(req: Request, body: dict) -> dict:  # type: ignore[type-arg]
    if body.get("trigger") is not None:
        t = body["trigger"]
        segment_ref(req, t.get("segment_id"), "trigger.segment_id")
        body["trigger"] = {"event": t.get("event", "login"), "segment_id": t.get("segment_id"),
                           "delay_seconds": t.get("delay_seconds", 0)}
    if body.get("frequency_cap") is not None:
        f = body["frequency_cap"]
        body["frequency_cap"] = {"max_per_contact": f.get("max_per_contact", 1),
                                 "period_days": f.get("period_days", 90)}
    return body


@handler("createSurvey")
def create_survey(req: Request) -> Response:
    w = req.world
    srv = new_survey(w, w.rng, w.clock.tick(), req.body.get("type"))
    srv["status"] = "draft"
    apply_patch(w.surveys, srv, _norm(req, dict(req.body)), _FIELDS, srv["created_at"])
    return ok(srv, 201)


@handler("listSurveys")
def list_surveys(req: Request) -> Response:
    return list_table(req, req.world.surveys, "surveys")


@handler("getSurvey")
def get_survey(req: Request) -> Response:
    return ok(get(req.world.surveys, req.path_params["id"], "survey"))


@handler("updateSurvey")
def update_survey(req: Request) -> Response:
    w = req.world
    srv = get(w.surveys, req.path_params["id"], "survey")
    return ok(apply_patch(w.surveys, srv, _norm(req, dict(req.body)), _FIELDS, now(req)))


@handler("activateSurvey")
def activate_survey(req: Request) -> Response:
    w = req.world
    srv = get(w.surveys, req.path_params["id"], "survey")
    return ok(apply_patch(w.surveys, srv, {"status": "active"}, ("status",), now(req)))


@handler("listSurveyResponses")
def list_responses(req: Request) -> Response:
    sid = req.path_params["id"]
    get(req.world.surveys, sid, "survey")
    return list_table(req, req.world.responses[sid], f"responses:{sid}")


@handler("getSurveyStats")
def survey_stats(req: Request) -> Response:
    srv = get(req.world.surveys, req.path_params["id"], "survey")
    return ok(req.world.survey_stats(srv["id"]))
