"""What every process runs on: clients built at start-up, the Kafka consumer
loop and worker lifecycle, logging, metrics and tracing."""
