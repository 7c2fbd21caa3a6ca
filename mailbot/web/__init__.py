"""The operators' web desk: a queue of what needs a person, claim, RMA and ledger pages,
search, and the operator actions with the reply previewed before it is sent.

Server-rendered (Starlette, jinja2) on top of `mailbot.services`;
`mailbot.web.app.create_app` builds the ASGI application from the CLI's composition root.
"""
