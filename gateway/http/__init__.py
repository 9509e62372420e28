"""The gateway's HTTP surface: the ``/v1`` routes, request reading (multipart forms) and the client-disconnect watch."""
