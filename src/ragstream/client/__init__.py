"""The ``rag`` client commands' side of the HTTP API: a signed-in session
kept in the user's config folder, uploads, chat and documents. They talk to
a gateway over HTTP only, never to its database."""
