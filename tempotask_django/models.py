"""No tables: tempotask keeps its state in Redis."""
