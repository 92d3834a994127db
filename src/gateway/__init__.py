"""HTTP gateway: auth, uploads, chat over SSE, history, health, metrics."""
