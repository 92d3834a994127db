"""What two or more ragstream services need: settings, event models, topics,
database access, the vector store, embeddings, blob storage, logging."""
