"""Local servers that speak third-party HTTP APIs, for tests of clients written against them."""
