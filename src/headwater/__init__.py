"""Headwater: an identity lifecycle engine behind Okta's management API."""

__version__ = "0.1.0"
