"""The emergency path: `path.EmergencyPath` (its entry point), the fast path that tells people
before the alert is stored (`fastpath`), and the fallback that tells them while the database
cannot be reached (`fallback`)."""
