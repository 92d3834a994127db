"""Answers on their way to the client: a chat published to Kafka and its
replies relayed back (``relay``, ``chat_stream``), this replica's reply
partition (``lease``) and the records read from it, sorted into one inbox per
open stream (``replies``, ``inbox``), the SSE response that carries them
(``sse``), the drain on SIGTERM that lets open streams finish before a
restart (``drain``), and resuming a stream after a dropped connection, on any
replica (``resume``), with the grace its answer gets meanwhile (``leaving``)."""
