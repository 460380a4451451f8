"""What executes a topology: the streaming runner (Faust on Kafka) and the local runner."""
