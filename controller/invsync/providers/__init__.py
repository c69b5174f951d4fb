"""Platform clients behind small interfaces (see base.py)."""
