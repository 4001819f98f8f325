"""Redis adapter: one client that degrades when Redis is down, and what is kept in it."""
