"""The dashboard's screens: the runs table, one run, and runs compared."""
