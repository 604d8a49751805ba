"""The PostgreSQL view backend: a private server for tests and local clusters."""
