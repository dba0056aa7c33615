"""Developer tooling: DynamoDB Local, table schema, local server, stream pump."""
