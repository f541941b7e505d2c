"""The pinned deployment files, shipped as package data (`hotline.deploy`) and read through
importlib.resources: Kafka's pom, broker properties and topics, Keycloak's pom and realm.
Nothing here is code; `images/` is for building the service image and is not shipped."""
