"""How the work runs, with no codec decisions: band threads and BLAS threads (`threads`), band
and buffer sizes (`band_sizes`), and the compiled per-sample loops or their numpy fallback
(`kernels`)."""
