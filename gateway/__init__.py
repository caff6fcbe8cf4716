"""Gateway: the HTTP front door (REST API, live alert stream, console and family pages, sign-in and
roles). Nothing else: the composition root is `runtime`, the command line `cli`.
"""
