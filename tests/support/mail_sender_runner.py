"""The outbox sender in a process of its own, for the tests that kill one mid-way:

    python -m tests.support.mail_sender_runner [--die-after-claim] [--mail-id N]

It sends to MAIL_SERVER/MAIL_PORT (environment) on the tests' database (DATABASE_URL), the
``test_note`` kind registered; ``--die-after-claim`` SIGKILLs the process right after the
claim's commit, before any SMTP (no cleanup, no exit handlers: as a lost machine stops).
Prints what it sent as JSON."""

from __future__ import annotations

import argparse
import json
import os
import signal


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--die-after-claim", action="store_true")
    parser.add_argument("--mail-id", type=int)
    args = parser.parse_args()

    from app import create_app
    from app.extensions import db
    from app.services.mail import sender
    from tests.support import mail_notes  # noqa: F401 - registers the test kind
    from tests.support.apps import config_for_tests

    app = create_app(
        config_for_tests(
            MAIL_SERVER=os.environ["MAIL_SERVER"], MAIL_PORT=int(os.environ["MAIL_PORT"])
        )
    )
    if args.die_after_claim:
        sender._after_claim = lambda _ids: os.kill(os.getpid(), signal.SIGKILL)
    with app.app_context():
        if args.mail_id is not None:
            outcome = sender.send_one(db.session, args.mail_id)
        else:
            outcome = sender.send_due(db.session)
    print(json.dumps({"sent": outcome.sent, "retried": outcome.retried, "failed": outcome.failed}))


if __name__ == "__main__":
    main()
