"""Runtime support of the codec: the compiled kernels (svdcodec.runtime._kernels)."""
