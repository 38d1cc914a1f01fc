"""Multi-datacenter quorum coordinator for HashiCorp Consul."""

__version__ = "0.1.0"
