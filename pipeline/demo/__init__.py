"""`inferstream demo`: a live synthetic stream through a real worker, watched in the terminal."""
