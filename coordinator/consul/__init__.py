"""Our Consul client: pure request building / response parsing (sansio) + a tiny httpx adapter.

- sansio.py: the facade to import builders, parsers and result types from
- errors.py: the one exception tree (drawn in its docstring)
- config.py: ConsulConfig.from_env (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, TLS, ...)
- client.py: AsyncConsul, the asyncio/httpx adapter

Written from Consul's documentation only; it shares no code with the emulator (sim/consul).
"""
