"""What wraps every route: the ASGI middleware (request ids, body bounds,
security headers), exceptions turned into responses (``errors``), the FastAPI
dependencies the routes declare (``deps``), the rate and stream limits kept in
Redis (``limits``) and the dependencies that apply them (``throttle``), and
the per-process bound on uploads read before their body (``upload_gate``)."""
