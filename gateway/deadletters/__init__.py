"""Dead letters for admins: list what agents set aside, and re-drive a record after a fix."""
