"""Faust agents: the only writers of business state."""
