"""Webhook endpoints and their delivery logs."""

from __future__ import annotations

from ..generate import new_delivery, new_webhook
from ..routing import Request, Response, handler
from .common import apply_patch, get, list_table, now, ok


@handler("createWebhookEndpoint")
def create_endpoint(req: Request) -> Response:
    w = req.world
    hook = new_webhook(w, w.rng, w.clock.tick())
    hook["status"] = "active"
    apply_patch(w.webhooks, hook, req.body, ("url", "events", "description"), hook["created_at"])
    if "secret" in req.body:
        w.webhook_secrets[hook["id"]] = req.body["secret"]
    # The signing secret is shown once, at creation.
    return ok({**hook, "secret": w.webhook_secrets[hook["id"]]}, 201)


@handler("listWebhookEndpoints")
def list_endpoints(req: Request) -> Response:
    return list_table(req, req.world.webhooks, "webhooks")


@handler("updateWebhookEndpoint")
def update_endpoint(req: Request) -> Response:
    w = req.world
    hook = get(w.webhooks, req.path_params["id"], "webhook endpoint")
    return ok(apply_patch(w.webhooks, hook, req.body, ("url", "events", "status", "description"),
                          now(req)))


@handler("deleteWebhookEndpoint")
def delete_endpoint(req: Request) -> Response:
    hook = get(req.world.webhooks, req.path_params["id"], "webhook endpoint")
    req.world.webhooks.soft_delete(hook["id"], now(req))
    return Response(204, None)


@handler("listWebhookEndpointLogs")
def list_logs(req: Request) -> Response:
    hid = req.path_params["id"]
    get(req.world.webhooks, hid, "webhook endpoint")
    return list_table(req, req.world.deliveries[hid], f"deliveries:{hid}")


@handler("testWebhookEndpoint")
def test_endpoint(req: Request) -> Response:
    w = req.world
    hook = get(w.webhooks, req.path_params["id"], "webhook endpoint")
    new_delivery(w, w.rng, hook, w.clock.tick())
    return ok({"sent": True})
