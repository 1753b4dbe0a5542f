"""archive-dr: build, check and rebuild the archive's two-site disaster recovery."""
