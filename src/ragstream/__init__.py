"""ragstream's command line (``rag``) and the local stack it runs on."""
