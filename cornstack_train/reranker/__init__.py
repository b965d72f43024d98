"""Listwise reranker training: candidate lists, teacher orders, LoRA fine-tuning and evaluation."""
