"""The one front door for documents.

Every way a document enters ragstream (an upload through the gateway, an
internal service through ``RagKafkaClient``, and any source to come) goes
through the same three steps, here:

- ``checks``: the name, the content type and the size, refused the same way
  whichever door they came in by, before anything is written;
- ``Intake.admit`` and ``Intake.store``: the tenant's quota, the blob, the
  row, then the queueing, undone on any failure (nothing is half-accepted);
- ``queue``: a ``queued`` status, then the ingest request, on the document's
  key. The sweeper (a document whose request was lost) and ``rag reindex``
  (an indexed document sent through again) queue existing rows with it.
"""

from shared.intake.checks import check_content_type, check_filename, check_size, new_document
from shared.intake.queue import ingest_request, queue, queued_status
from shared.intake.store import Intake

__all__ = [
    "Intake",
    "check_content_type",
    "check_filename",
    "check_size",
    "ingest_request",
    "new_document",
    "queue",
    "queued_status",
]
