"""The CoRNStack data and training pipeline (mining, dual consistency filtering, hard negatives,
InfoNCE, listwise reranker training). Its stages land with their own issue; nothing here yet."""
