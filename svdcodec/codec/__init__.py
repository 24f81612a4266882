"""The codec's stages as functions on arrays, in pipeline order; the maths, knowing no bytes.

    samples  --colour-->    planes      (Y'CbCr for 8-bit RGB(A), chroma halved; else scaled)
    planes   --layout-->    matrices    (the plane itself, or one row per p x p patch)
    matrices --factorize--> factors     (truncated SVD through the Gram matrix)
    factors  --quantize-->  integers    (sigma-scaled U and V, one dead-zone step per plane)
    integers --coding-->    symbols     (predicted dense grids, or run/level symbols)

`resample` gives Pillow's chroma filters band by band. Each function is the whole-array
statement of the spec's arithmetic; the encoder and decoder run the same arithmetic band by band
(and, where `runtime.kernels` has them, in compiled loops: the stage functions choose, their
callers never do).
"""
