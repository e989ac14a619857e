"""The dashboard's screens: submit dialog, job detail, connect."""
