"""What the tests share, one module per kind of thing; test modules import from here, never from
each other.

Helpers (imported by the tests):

- ``database``: the session's PostgreSQL, the domain tables and emptying them between tests;
- ``apps``: the test configuration, a second app on the same database, the request-isolating
  test client;
- ``builders``: users, partners, events and a sold ticket written directly; logging in;
- ``shop``: a customer's purchase through the JSON API (``sign_up``, ``card_token``,
  ``hold_seats``, ``pay``; ``buy`` for the whole of it);
- ``pages``: the shop's pages without JavaScript (reading them, filling their forms);
- ``gate``: events with their doors open, gate devices, scans and the scan log;
- ``money``: settlement days, reconciliation, payouts, balances and report files;
- ``pg_proxy``: a TCP proxy in front of PostgreSQL that a test can cut;
- ``worker``: a real Celery worker process;
- ``browser``: Debian's Chromium and steps shared by the browser tests;
- ``clock``: a clock a test moves by hand;
- ``imports``: what a file imports, for the unit tests that keep imports pointing the right way.

Fixtures (pytest plugins listed in ``tests/conftest.py``; tests ask for them by name):
``fixtures_app`` (Redis for the session, ``app``, ``db_context``, ``client``), ``fixtures_events``
(``two_partners``, ``on_sale``), ``fixtures_gate`` (``store``, ``proxy``, ``proxied``) and
``fixtures_money`` (``acquirer_fees``, ``broker``).
"""
