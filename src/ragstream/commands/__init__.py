"""The ``rag`` command's groups, one module each; ragstream.cli assembles them."""
