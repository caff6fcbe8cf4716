"""Notification: the channels that reach a person, the outbox and its dispatcher, web push, signed
acknowledge links, and commands to devices.
"""
