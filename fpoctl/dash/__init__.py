"""`fpoctl dash`: a live Textual dashboard over the run store (reads the store only)."""
