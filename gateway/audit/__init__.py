"""The audit trail: what requests did, recorded through the audit agent, read by admins."""
