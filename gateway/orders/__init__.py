"""Orders: placed (idempotently), read and cancelled, and the admins' view of stuck sagas."""
