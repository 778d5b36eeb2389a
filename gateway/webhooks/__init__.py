"""/v1/webhooks: sellers' and admins' webhook endpoints and their delivery logs."""
