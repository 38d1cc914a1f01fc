"""Our Consul client: pure request building / response parsing (sansio) + a tiny httpx adapter."""
