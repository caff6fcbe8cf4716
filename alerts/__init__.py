"""Alerts: detection (pure, event time), the alert store, notification and escalation."""
