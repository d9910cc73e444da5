"""The webhook rules without a database: which addresses an endpoint may have, the signature a
receiver checks (its timestamp against replay), the secrets a rotation leaves signing, and
which resolved addresses production refuses to post to."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time

import pytest

from app.models import DomainError, WebhookEndpoint
from app.models.webhook import ROTATION_OVERLAP, check_url, is_public_address, new_secret
from app.services.webhooks import transport


@pytest.mark.parametrize(
    "url",
    [
        "https://crm.example.com/hooks/bilheteria",
        "https://crm.example.com:8443/h?partner=7",
        "  https://crm.example.com/  ",
    ],
)
def test_an_https_address_is_accepted_trimmed(url):
    assert check_url(url, allow_local_http=False) == url.strip()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Give the endpoint's address"),
        ("http://crm.example.com/hooks", "Give an https:// address"),
        ("http://127.0.0.1:8000/hooks", "Give an https:// address"),  # production
        ("ftp://crm.example.com/", "Give an https:// address"),
        ("https:///no-host", "Give an https:// address"),
        ("https://crm.example.com/a b", "Give an https:// address"),
        ("https://crm.example.com:http/", "This is not a web address"),
        ("https://me:secret@crm.example.com/", "No user or password"),
        ("https://crm.example.com/" + "x" * 500, "longer than 500"),
        # Not ASCII: a request could never carry it (the xn-- form and %C3%A7 could).
        ("https://bilheteria-ingressos.café/hooks", "in ASCII"),
        ("https://crm.example.com/ganhos/ação", "in ASCII"),
    ],
)
def test_other_addresses_are_refused_at_the_url_field(url, message):
    with pytest.raises(DomainError, match=message) as refused:
        check_url(url, allow_local_http=False)
    assert refused.value.field == "url"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/hooks", "http://localhost/h", "http://[::1]:9/h"]
)
def test_plain_http_to_this_machine_is_allowed_outside_production(url):
    assert check_url(url, allow_local_http=True) == url
    with pytest.raises(DomainError):
        check_url("http://10.0.0.5/h", allow_local_http=True)


def test_an_endpoints_kinds_are_known_at_least_one_and_kept_in_a_fixed_order():
    endpoint = WebhookEndpoint(url="https://x.example.com/", kinds=["payout.paid", "order.paid"])
    endpoint.check(allow_local_http=False)
    assert endpoint.kinds == ["order.paid", "payout.paid"] and endpoint.secret
    for kinds, field in (([], "kinds"), (["order.shipped"], "kinds")):
        with pytest.raises(DomainError) as refused:
            WebhookEndpoint(url="https://x.example.com/", kinds=kinds).check(allow_local_http=False)
        assert refused.value.field == field


def test_a_signature_verifies_under_its_secret_within_five_minutes_only():
    body = b'{"id":1,"type":"order.paid"}'
    now = int(time.time())
    header = transport.signature_header(["whsec_a"], now, body)
    expected = hmac.new(b"whsec_a", f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={now},v1={expected}"
    assert transport.verify_signature(header, body, "whsec_a")
    assert not transport.verify_signature(header, body, "whsec_b")
    assert not transport.verify_signature(header, body + b" ", "whsec_a")  # the body changed
    # A request captured and replayed later is refused by its timestamp...
    assert not transport.verify_signature(header, body, "whsec_a", now=now + 301)
    assert transport.verify_signature(header, body, "whsec_a", now=now + 299)
    # ...and changing the timestamp breaks the signature.
    replayed = header.replace(f"t={now}", f"t={now + 600}")
    assert not transport.verify_signature(replayed, body, "whsec_a", now=now + 600)
    assert not transport.verify_signature("v1=" + expected, body, "whsec_a")


def test_after_a_rotation_both_secrets_sign_for_a_day_then_only_the_new_one():
    now = dt.datetime(2026, 12, 1, 12, 0)
    endpoint = WebhookEndpoint(url="https://x.example.com/", kinds=["order.paid"])
    endpoint.secret = old = new_secret()
    assert endpoint.signing_secrets(now) == [old]
    new = endpoint.rotate_secret(now)
    assert new != old and new.startswith("whsec_")
    assert endpoint.signing_secrets(now + ROTATION_OVERLAP - dt.timedelta(seconds=1)) == [new, old]
    assert endpoint.signing_secrets(now + ROTATION_OVERLAP) == [new]
    header = transport.signature_header(endpoint.signing_secrets(now), int(time.time()), b"{}")
    assert transport.verify_signature(header, b"{}", old) and transport.verify_signature(
        header, b"{}", new
    )


def test_a_second_rotation_within_the_day_is_refused_so_the_previous_secret_keeps_signing():
    now = dt.datetime(2026, 12, 1, 12, 0)
    endpoint = WebhookEndpoint(url="https://x.example.com/", kinds=["order.paid"])
    endpoint.secret = first = new_secret()
    second = endpoint.rotate_secret(now)
    with pytest.raises(DomainError, match="less than a day ago") as refused:
        endpoint.rotate_secret(now + dt.timedelta(hours=23))
    assert refused.value.field == "secret"
    # Nothing changed: the first secret still signs until its day is over.
    assert endpoint.signing_secrets(now + dt.timedelta(hours=23)) == [second, first]
    third = endpoint.rotate_secret(now + ROTATION_OVERLAP)
    assert endpoint.signing_secrets(now + ROTATION_OVERLAP) == [third, second]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("192.168.0.10", False),
        ("172.16.5.4", False),
        ("169.254.169.254", False),  # cloud metadata
        ("fe80::1%eth0", False),
        ("0.0.0.0", False),  # noqa: S104 - an address to refuse
        ("not an address", False),
    ],
)
def test_production_posts_only_to_addresses_on_the_internet(address, public):
    assert is_public_address(address) is public


def test_a_host_resolving_to_this_machine_is_refused_for_good():
    with pytest.raises(transport.Permanent, match="not on the internet"):
        transport.check_destination("https://localhost:8443/hooks")
