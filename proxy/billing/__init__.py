"""Billing: monthly invoices per user or team, from the recorded usage.

- ``settings``: the ``[billing]`` settings (the config's section), and the holder of those in force.
- ``invoice``: the invoice and its lines as values, their ids and JSON.
- ``periods``: ``YYYY-MM`` periods, and which one is due.
- ``amounts``: an invoice's figures from usage totals; money, and where it is rounded.
- ``queries``: the invoices in the database: generate, list, get, set status.
- ``export``: invoices as CSV or JSON.
- ``scheduler``: generation inside the server, once a month.
- ``api`` and ``cli``: the admin routes and the ``tollgate invoices`` commands.
"""
