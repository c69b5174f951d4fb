"""invsync: keep sales-channel stock equal to what the seller's warehouses can really sell."""

__version__ = "0.1.0"
