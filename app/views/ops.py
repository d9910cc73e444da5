"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from app.extensions import db

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


# What the site still does with Redis down, said in the answer: the balancer keeps the node
# (sales and the dashboard run on the database) and operators read why it is degraded.
WITHOUT_REDIS = (
    "sales and the dashboard work on the database; gate scans use the database store; "
    "rate limits, Celery tasks (mails, reports) and the fast paths wait for Redis"
)


@bp.get("/readyz")
def readyz() -> Any:
    """Readiness per dependency, for a balancer's health check. The database is required: 503
    without it. Redis is not: without it the node stays in rotation (200), ``degraded``, and
    says what waits."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        db.session.rollback()
        checks["database"] = f"error: {type(exc).__name__}"
    redis_url = current_app.config.get("REDIS_URL")
    if redis_url:
        try:
            redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1).ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    if checks["database"] != "ok":
        return jsonify(status="unavailable", checks=checks), 503
    if checks.get("redis", "ok") != "ok":
        return jsonify(status="degraded", checks=checks, degraded={"redis": WITHOUT_REDIS}), 200
    return jsonify(status="ok", checks=checks), 200


@bp.get("/favicon.ico")
def favicon() -> Any:
    return "", 204
