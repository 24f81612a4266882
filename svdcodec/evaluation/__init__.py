"""Measuring the codec: quality metrics and BD-rate (`metrics`), and the other codecs it is
compared with (`codecs`: JPEG, WebP, AVIF, JPEG 2000, PNG and the lecture's plain truncated SVD),
shared by `svdi-compare`, benchmarks/ and the tests."""
