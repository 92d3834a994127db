"""Who is asking: users and tenants, passwords and tokens (``security``), the
refresh-token families of a login (``sessions``), API keys, the audit log of
who did what, and ``user_admin``, the ``rag user create`` command. Plain
functions over PostgreSQL and the token keys, with nothing of HTTP in them:
the routes and ``gateway.http.deps`` call them."""
