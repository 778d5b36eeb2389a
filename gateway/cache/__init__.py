"""The shared response cache: public reads kept in Redis, dropped by the change events."""
