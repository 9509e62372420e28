"""The GraphQL door to the uploads: ``/graphql`` (Strawberry schema, our own endpoint)."""
