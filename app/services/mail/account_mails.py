"""Mails to accounts (see messages.py for how a kind is registered and rendered)."""

from __future__ import annotations
