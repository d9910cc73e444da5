"""The webhook sender in a process of its own, for the tests that kill one mid-way:

    python -m tests.support.webhook_sender_runner [--die-after-claim | --die-after-post]
                                                  [--endpoint N]

It sends on the tests' database (DATABASE_URL) to whatever the endpoints name (the test's own
HTTP server); ``--die-after-claim`` SIGKILLs the process right after the claim's commit, before
any request, and ``--die-after-post`` once the endpoint answered, before the row records it (no
cleanup, no exit handlers: as a lost machine stops). ``--endpoint``: send that endpoint's
deliveries (what the task after a commit does), else sweep. Prints what it did as JSON."""

from __future__ import annotations

import argparse
import json
import os
import signal


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--die-after-claim", action="store_true")
    parser.add_argument("--die-after-post", action="store_true")
    parser.add_argument("--endpoint", type=int)
    args = parser.parse_args()

    from app import create_app
    from app.extensions import db
    from app.services.webhooks import sender
    from tests.support.apps import config_for_tests

    app = create_app(config_for_tests())

    def die(*_args: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if args.die_after_claim:
        sender._after_claim = die
    if args.die_after_post:
        sender._after_post = die
    with app.app_context():
        if args.endpoint is not None:
            outcome = sender.send_endpoint(db.session, args.endpoint)
        else:
            outcome = sender.send_due(db.session)
    print(json.dumps({"delivered": outcome.delivered, "retried": outcome.retried,
                      "failed": outcome.failed}))  # fmt: skip


if __name__ == "__main__":
    main()
