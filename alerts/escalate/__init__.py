"""Escalation: which policy an alert follows, who is on duty (the rota), who each round reaches and
when the next round is due.
"""
