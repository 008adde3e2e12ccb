"""The local Key Vault: the secrets data plane over HTTPS on loopback (``emulator``, with throwaway TLS from
``tls``), and ``proxy``, the CONNECT proxy that lets an unchanged client reach ``https://<name>.vault.azure.net``
there. The local pipeline runner serves it to the Key Vault step of the CD stages."""
