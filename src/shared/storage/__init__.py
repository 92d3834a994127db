"""Where state lives: PostgreSQL (pool, migrations, documents, chat history, BM25),
the blob store, the Chroma collection and the Redis answer cache."""
