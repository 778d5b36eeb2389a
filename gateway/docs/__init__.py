"""Published descriptions: OpenAPI, the docs page, AsyncAPI and event schemas."""
