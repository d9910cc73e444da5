"""A mail kind of the tests' own, ``test_note``, so the sender is tested without depending on
the application's kinds: its params say what it carries (an attachment, an inline image) or
how it goes wrong (``gone``: what it is about was deleted; ``broken``: the renderer fails)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.services.mail import messages

KIND = "test_note"
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
PDF = b"%PDF-1.4\n% a test attachment\n%%EOF\n"


@messages.renderer(KIND)
def note(_session: Session, params: dict[str, Any]) -> messages.Message:
    if params.get("gone"):
        raise messages.Gone("order 42 was deleted")
    if params.get("broken"):
        raise RuntimeError("the template is broken")
    n = params.get("n", 0)
    message = messages.Message(
        subject=f"Note {n}",
        text=f"Note number {n}.",
        html=f'<p>Note number {n}.</p><img src="cid:logo-{n}">',
    )
    if params.get("parts"):
        message.inline.append(messages.Inline(f"logo-{n}", "image/png", PIXEL))
        message.attachments.append(messages.Attachment(f"note-{n}.pdf", "application/pdf", PDF))
    return message
