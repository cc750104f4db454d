"""Insight on spend beyond fixed limits: alert emails, anomalies, month-end forecasts and cost advice.

- ``email``: alert emails over SMTP, off the request path, with retries;
- ``anomalies``: unusual hours and runaway threads, found in the hourly rollup (``monitor`` runs it);
- ``forecast``: month-end projections and the day each limit will be reached;
- ``advice``: measured opportunities to spend less (``tollgate advise``).
"""
