"""Local engines (Kafka, Keycloak, the MongoDB wire) run as child processes, no Docker."""
