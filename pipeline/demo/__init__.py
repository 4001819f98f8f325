"""`inferstream demo`: a live fraud stream through a real worker, watched in the terminal."""
