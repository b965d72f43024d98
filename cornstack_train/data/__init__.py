"""Training data: sources, mining, cleaning, the deny-list, dual consistency filtering and hard negatives."""
