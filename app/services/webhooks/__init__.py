"""Webhooks for partners' own systems ("Webhooks" in ARCHITECTURE.md): the outbox written in
the cause's transaction (outbox.py), the signed, ordered, at-least-once sender (sender.py), and
the partner's endpoints (endpoints.py)."""
