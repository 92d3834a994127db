"""``python -m ragstream ...`` is the same as ``rag ...``."""

from ragstream.cli import main

if __name__ == "__main__":
    main()
