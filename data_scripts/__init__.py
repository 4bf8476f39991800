"""Offline corpus preparation and generation scripts (may import audiolvm.core and audiolvm.data)."""
