"""What two or more ragstream services need, in rooms:

- ``contracts``: the wire (event models, topic names, generated schemas);
- ``storage``: where state lives (PostgreSQL, blobs, Chroma, the answer cache);
- ``adapters``: models behind interfaces (embedders, provider clients, ONNX files);
- ``runtime``: what every process runs on (clients, the consumer, the worker
  lifecycle, logging, metrics, tracing).

At the top: the settings (``config``), the exception root (``errors``), and
two small vocabularies (``formats``, ``text``).
"""
