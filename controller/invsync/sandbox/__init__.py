"""A loopback stand-in for TikTok Shop, Shopify and the generic HTTP source (docs/platforms.md)."""
