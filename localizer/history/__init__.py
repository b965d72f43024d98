"""The repository's own history at ranking time: past fixes like the issue, fix-proneness, co-change."""
