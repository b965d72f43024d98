"""Pre-triage reports: suspects with code, likely owners, recent commits, batch triage of issue files."""
