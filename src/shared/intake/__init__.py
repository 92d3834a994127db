"""The one front door for documents.

Every way a document enters ragstream (an upload through the gateway, an
internal service through ``RagKafkaClient``, and any source to come) goes
through the same three steps, here:

- ``checks``: the name, the content type and the size, refused the same way
  whichever door they came in by, before anything is written;
- ``Intake.admit`` and ``Intake.store``: the tenant's quota, the blob, the
  row, then the queueing, undone on any failure (nothing is half-accepted);
- ``wait``: a ``queued`` status, then the document waits in PostgreSQL
  until a releaser in an ingest worker publishes its ingest request, fairly
  across tenants (``ingest.release``). ``rag reindex`` makes indexed
  documents wait again, as bulk work (``shared.storage.ingest_queue``).
"""

from shared.intake.checks import check_content_type, check_filename, check_size, new_document
from shared.intake.queue import ingest_request, queued_status, wait
from shared.intake.store import Intake

__all__ = [
    "Intake",
    "check_content_type",
    "check_filename",
    "check_size",
    "ingest_request",
    "new_document",
    "queued_status",
    "wait",
]
