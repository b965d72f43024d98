"""The bi-encoder at run time: sentence-transformers or ONNX runtimes, and the shipped weights."""
