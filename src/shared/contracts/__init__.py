"""The wire: event models, topic names, and the schemas generated from them."""
