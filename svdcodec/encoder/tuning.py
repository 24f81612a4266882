"""Every constant of the reference encoder that changes the bytes of a file (spec §6 gives the
reasons). Band sizes and threads, which do not, are in `runtime.band_sizes`; the quantizer's
rounding offset and rank-decision multiplier are with the quantizer (`codec.quantize`)."""

from __future__ import annotations

#: The quality scale is libjpeg's: a scale factor of 5000/q below 50 and 200-2q above, so
#: that -q means what JPEG users expect; STEP_SCALE maps it to the step, STEP_MIN is quality 100.
STEP_SCALE = 0.25
STEP_MIN = 0.5
#: The quality of `encode` when none is given.
DEFAULT_QUALITY = 75
#: ... and under a lossless residual of uint16 or float32 samples, where a finer layer leaves
#: less to the residual (8 16-bit images of docs/lossless.md: 6 % smaller than at 75; 8-bit
#: Kodak lossless is smallest at 75).
LOSSLESS_WIDE_QUALITY = 90
#: The finest layer: where a residual's q would pass 2^31 steps over a coarser one (large
#: 32-bit or float samples at a low quality), the encoder codes the layer at this quality.
FINEST_QUALITY = 100
#: Finest step target_psnr and max_bytes search (quality 100 is step 0.5): every file is
#: reconstructed by the exact rule (spec §5.1), whose integer products resolve the factors of
#: steps far below this too coarsely (32.5 dB at step 0.001 on svdcodec's sample photo, 52.9 dB
#: at step 0.01, where quality 100 gives 51 dB).
FINEST_SEARCHED_STEP = 2.0 ** -6
#: The same with aq=True: an adapted plane's product takes A o M (spec §5.5: column 0 times 16,
#: the others times M >= 16), whose 4 more bits the exact rule's bound takes from the factors'
#: precision, so the quality falls off 16 times sooner (the sample photo: 32.8 / 43.8 / 50.7 /
#: 52.9 / 52.7 dB at steps 2^-6 .. 2^-2, without aq 52.8-52.9 dB at each).
AQ_FINEST_SEARCHED_STEP = FINEST_SEARCHED_STEP * 16
#: The most error the exact reconstruction's integer weights (spec §5.1) may add to a plane, as
#: a multiple of the quantizer's own (step / sqrt(12) RMS), before the encoder tries coarser
#: steps (the finest steps of large planes: at quality 100 a plain plane's first weight was a
#: few dozen, and its rounding scaled the whole image, an 8-bit grey 1080p image +19 levels):
#: DRIFT_STEP_FACTOR apart, up to the first step below it, the file that decodes closest to
#: the image kept (`encoder._encode`'s `drift_free`).
EXACT_WEIGHT_ERROR = 1.0
DRIFT_STEP_FACTOR = 2.0 ** 0.25
#: The coarser steps tried at most (12 octaves: the weights grow as the square of the step, the
#: error allowed as the step, so a plane passes within a few; this bounds the loop whatever
#: the data).
DRIFT_TRIES = 48
#: Chroma is subsampled 2x2 when the luma step is at least this (low and medium quality).
SUBSAMPLE_FROM_STEP = 6.0
#: Chroma step relative to the luma step: 0.70, fewer bytes on chroma, which luma SSIM (what
#: people see as sharpness) does not weigh and RGB PSNR does. On the 8 tuning photos the luma
#: SSIM BD-rate vs JPEG goes from +7.8 % (at 0.55, RGB PSNR's own optimum) to +3.2 % and RGB
#: PSNR's from -17.8 % to -18.1 %; on the other 16, +10.5 -> +6.0 % and -17.3 -> -17.2 %
#: (studies/perceptual_study.py). 0.85 since the patch mean's finer step
#: (`codec.quantize.MEAN_STEP`), whose RGB PSNR gain pays for it: together, on kodim01-08,
#: RGB PSNR 28-38 dB -21.6 -> -21.9 %, luma SSIM -0.2 -> -3.4 % (0.85 alone: -20.6 / -3.0 %;
#: studies/adaptive_quant_study.py).
CHROMA_STEP = 0.85
#: aq=True (adaptive quantization, 8-bit images) tunes the encoder for luma SSIM, not only
#: the luma plane's steps (issue #16; studies/ssim_tune_study.py, docs/design-notes.md,
#: "Tuning aq=True for luma SSIM"; studied on 6 Kodak photos, confirmed on all 24 and the
#: held-out photos): the chroma step ratio by the luma step, AQ_CHROMA_STEP's first ratio up
#: to its step, its second from its step on, log-linear in the step between (coarser chroma
#: where luma SSIM's window lies, finer at low rates, where chroma's error weighs most in RGB
#: PSNR); G written AQ_G_SCALE times the plane's geometric mean (spec §5.5: more patches in
#: the finer classes); effort 2's RDOQ at AQ_RDOQ_LAMBDA instead of RDOQ_LAMBDA (0.10); and
#: at effort 2 plane 0's layout leaning towards patch 4 at luma steps up to
#: AQ_PATCH4_MAX_STEP: at larger steps (low rates) patch 4 costs more than it gives, and at
#: effort 1 (no RDOQ) it costs RGB PSNR and SSIM. Since 2026-12-05's third round
#: (docs/design-notes.md, "Luma SSIM on photos never tuned on: the adapted plane's layout
#: costed"), that plane is not predicted (`encoder.plane.predicted_side`, whose model was
#: fitted without AQ and leant by 2.5 score units before) but coded in both patch layouts on a
#: sample, patch 8's D + lambda R taken 1 + AQ_PATCH8_LEAN times (`Encoder.layout_lean`): the
#: prediction's misses had cost RGB PSNR and luma SSIM alike. At effort 2 the adapted
#: plane's patch mean is quantized at AQ_MEAN_STEP times the step (`encoder.aq.mean_step`,
#: stored in sigma as every component step is) where the step is at most AQ_MEAN_STEP_UP_TO
#: (quality 29 and above), MEAN_STEP above: there the finer mean no longer paid for its
#: bytes beside the map's finer classes, in RGB PSNR 28-38 dB nor in luma SSIM, while at
#: larger steps (the 24-30 dB window) it still does (docs/design-notes.md, "Luma SSIM on
#: photos never tuned on").
#: At effort 2 (2026-12-05, docs/design-notes.md, "Luma SSIM on photos never tuned on: RDOQ
#: from nearest and G x 1.6"), every plane's RDOQ starts from rounding to nearest
#: (AQ_RDOQ_ROUNDING; the adapted plane's map components keep the dead zone, the map is made
#: of them) and runs AQ_RDOQ_ROUNDS rounds: the RGB PSNR it gains pays for G at
#: AQ_EFFORT2_G_SCALE times the geometric mean (more luma SSIM); effort 1, without that gain,
#: keeps AQ_G_SCALE.
#: Since 2026-12-05 (docs/design-notes.md, "Luma SSIM on photos never tuned on: G by the
#: step"), effort 2's G scale depends on the luma step: AQ_EFFORT2_G_SCALE's (step, scale)
#: points, log-linear in both between them and constant beyond them. At small steps (the top
#: of the 28-38 dB window) finer classes buy luma SSIM for less RGB PSNR than at large ones,
#: where a larger G only costs bytes in the 24-30 dB window.
#: Since 2026-12-05's third round (the same section as the costed layout), effort 2 also
#: rounds the adapted plane's map components (1 .. K' - 1, no RDOQ on them) from
#: AQ_MAP_ROUNDING instead of ROUNDING (0.38), in the map pass and in the bands alike
#: (`encoder.aq.map_rounding`): fewer of the main components' small values zeroed, more
#: texture kept, and the map's energies read from those integers; and takes the chroma step
#: ratio from AQ_EFFORT2_CHROMA_STEP's (step, ratio) points, log-linear between them: coarser
#: chroma above quality 70 (luma step 16), where the luma SSIM window reaches further than the
#: RGB PSNR one. The PSNR the costed layout gains pays for both.
AQ_CHROMA_STEP = ((16.0, 0.95), (64.0, 0.70))
AQ_EFFORT2_CHROMA_STEP = ((10.0, 1.1), (16.0, 0.95), (64.0, 0.70))
AQ_G_SCALE = 1.2
AQ_EFFORT2_G_SCALE = ((10.0, 3.0), (30.0, 1.6))
AQ_RDOQ_LAMBDA = 0.07
AQ_RDOQ_ROUNDING = 0.5
AQ_RDOQ_ROUNDS = 2
AQ_PATCH8_LEAN = 0.06
AQ_PATCH4_MAX_STEP = 64.0
AQ_MEAN_STEP = 0.9
AQ_MEAN_STEP_UP_TO = 45.0
AQ_MAP_ROUNDING = 0.44
#: Default patch side of the "patch" layout.
DEFAULT_PATCH = 8
#: Layouts that layout="auto" tries for each plane.
AUTO_LAYOUTS = ("patch4", "patch8")
#: Lagrange multiplier of the layout choice, in units of step^2 per bit.
LAYOUT_LAMBDA = 0.12
#: A plane of at least LAYOUT_SAMPLE * MIN_SAMPLE_BANDS bands chooses its layout on one band
#: in LAYOUT_SAMPLE, then codes only the chosen layout (see `encoder.plane.layout_sample`); a
#: smaller plane of at least LAYOUT_SAMPLE * MIN_SAMPLE_STRIPS strips of 32 rows chooses on one
#: strip in LAYOUT_SAMPLE; a smaller one still is costed whole in every candidate layout.
LAYOUT_SAMPLE = 8
MIN_SAMPLE_BANDS = 2
MIN_SAMPLE_STRIPS = 1
#: Layout "auto" between patch4 and patch8 (both streaming, the rank chosen by rate, an image
#: that cannot be one svdi decoded) predicts the cheaper layout from the two Gram matrices'
#: eigenvalues (`encoder.plane.predicted_side`) and factorizes and codes only that one,
#: instead of coding a sample (or a small plane whole) in both, unless the prediction's score
#: is within LAYOUT_MODEL_MARGIN of the boundary. studies/layout_model.py fits LAYOUT_MODEL,
#: the weights of `layout_features` (water levels LAYOUT_MODEL_LEVELS step^2), on Kodak;
#: docs/performance.md ("Layout prediction") has the bytes and times, on Kodak and held-out
#: photos (margin 1: 81 % of the Kodak planes of the study predicted).
PREDICT_LAYOUT = True
LAYOUT_MODEL_LEVELS = (0.02, 0.08, 0.3)
LAYOUT_MODEL_MARGIN = 1.0
LAYOUT_MODEL = (-2.56637, -3256.91, 1.00784, 8.04422, 1098.1, -2.29082, -7.81187, -245.587,
                -2.42307, 1.08592, -1.80566, 0.00220747)
#: Patch layouts store their singular values refitted to the quantized factors
#: (`codec.refine.refitted_sigma`): -0.4 % BD-rate on Kodak, -0.5 % on held-out photos, no
#: format change (studies/recon_study.py, docs/design-notes.md).
REFIT_SIGMA = True
#: Most matrix rows a plane's basis is fitted to its quantized coefficients on (evenly
#: spaced bands of larger planes; see `encoder.plane.fitted_candidate`).
FIT_ROWS = 1 << 12
#: The fitted basis starts from this many components more than the eigenvectors' coding keeps
#: (re-encoding a decoded image, the rank decision may keep a component or two fewer than
#: the image holds).
FIT_EXTRA_RANK = 64
#: Size of the first group of sparse components and the growth factor of the next ones.
FIRST_GROUP = 15
GROUP_GROWTH = 4.0
#: Planes of fewer samples than this are coded in two component groups only (the first
#: component, then the rest), and a file whose planes all are puts each factor's blocks in one
#: chunk (spec §4.2): a preview of a small image is worth less than the block records and
#: zstd frames that more groups cost (docs/performance.md, "Fixed overhead").
PREVIEW_SAMPLES = 1 << 18
#: zstd level of the factor blocks at each `effort` of `encode`. The encoder decides at the
#: first (layouts, ranks and codings are measured by blocks packed at it); a higher effort
#: recompresses the kept blocks (`format.recompress`): level 15's optimal parsing is 3-8 %
#: smaller than level 1 on Kodak and its crops, levels 2-12 are no smaller than 1, and 19 no
#: smaller than 15 (docs/performance.md has the measurement). The parameters of each level
#: for a block's frame: `format.writer.BLOCK_PARAMETERS`.
EFFORT_LEVELS = {1: 1, 2: 15}
ZSTD_LEVEL = EFFORT_LEVELS[1]
DEFAULT_EFFORT = 1
#: Residual blocks (version 2): zstd level (19 is 10 % smaller than 3 on Kodak lossless, see
#: docs/lossless.md; its window stays within the format's 2^23) and the most samples of a
#: block (rows of one channel; larger grids cost a little memory for a little compression).
RESIDUAL_ZSTD_LEVEL = 19
#: zstd level of the residual blocks of a channel coded with no layer (an exact alpha that
#: varies) at each `effort` of `encode` without max_error (whose residuals are all coded at
#: RESIDUAL_ZSTD_LEVEL): a mask's residual is mostly runs of zeros, where
#: level 19 searches long; level 12 is 11-23 x faster for blocks 1.02-1.39 x as large on
#: cut-outs of photos (most on masks and smooth ramps), 3-35 x for 0.90-1.03 x on icons
#: (docs/lossless.md, "Alpha").
NO_LAYER_ZSTD_LEVELS = {1: 12, 2: 19}
RESIDUAL_BLOCK_SAMPLES = 1 << 22
#: The estimate of a file's residual over no layer (encoder.residual.bare_residual_bytes, which
#: decides whether the encoder tries that file too) codes one band of BARE_SAMPLE_ROWS rows in
#: every BARE_SAMPLE_EVERY: an eighth of the samples, spread over the image, a fraction of the
#: estimate's time on the whole.
BARE_SAMPLE_ROWS = 16
BARE_SAMPLE_EVERY = 8
#: The zstd levels of that estimate, the smallest kept: level 3 is within 1 % of noise's bare
#: file; the residual of a ramp under a bound is a staircase, whose repeats level 6 finds and
#: level 3 does not (a 16-bit ramp at max_error=16: level 3 5.8 x the bare file, kept its layer
#: at 3.7 x; level 6 1.9 x). Level 6 alone overshoots noise by 3 % (docs/lossless.md).
BARE_ESTIMATE_LEVELS = (3, 6)
#: The encoder tries that file where the estimate is below this fraction of the file with its
#: layer. The estimate is within 1 % of noise's bare file and 7-17 % above most photos' (zstd's
#: fast level finds no long matches), but it reaches 0.96-0.99 of two Kodak photos whose bare
#: file is no smaller or 0.6 % smaller, for an encode several times as long: the margin leaves
#: them alone (docs/lossless.md).
BARE_RETRY_BELOW = 0.95
#: Deblocking filter (format version 4, spec §5.4): the (alpha, beta, tc) the encoder tries on
#: each patch-layout plane, in multiples of the plane's quantizer step; it keeps the one of
#: least squared error, or none. studies/deblock_study.py: alpha 2-4, beta 1-2, tc 0.1 step
#: best on Kodak 1-4 (-3.7 % BD-rate on RGB PSNR), tc 0.5 step worse than no filter.
DEBLOCK_STRENGTHS = ((2.0, 1.0, 0.1), (4.0, 2.0, 0.1), (2.0, 1.0, 0.2), (4.0, 2.0, 0.2))
#: The strengths are judged on one band of rows in DEBLOCK_SAMPLE_EVERY (bands of about
#: DEBLOCK_SAMPLE_ROWS rows, whole patch rows) where the plane has at least 2 such groups of
#: bands; smaller planes whole. The choice only ranks a few strengths, and a band's edges
#: see the same quantizer as the plane's; docs/performance.md has the measurement.
DEBLOCK_SAMPLE_ROWS = 32
DEBLOCK_SAMPLE_EVERY = 4
#: At most about this many samples of a plane judged (more bands skipped between those judged
#: on large planes): ranking four strengths needs no more, and the encoder renders only the
#: judged bands' rows (docs/design-notes.md, deblocking; docs/performance.md: the cost).
DEBLOCK_SAMPLE_PIXELS = 1 << 20
#: Samples judged at once (a piece of the judged bands): their float64 errors and indices
#: take 16 bytes a sample, which must stay small beside a large image's peak.
DEBLOCK_PIECE_SAMPLES = 1 << 18
#: A plane coded with the basis fitted to its own integers takes no filter where the best
#: filter would remove more than this share of its error on the judged samples: then its
#: image is most likely one svdi decoded with that filter (its error is the edges the filter
#: moved), which filtering again at every generation blurs without end. No share separates
#: the two kinds (docs/design-notes.md, "Deblocking filter"): grey Kodak photos decoded from
#: default files 18.7-89 %, from effort 2, aq or restore files 12-85 %, from patch16 files
#: 0.4-3 %; originals the fit wins on: rendered text, charts and UI 5.6-18 %, a striped
#: pattern 30-31 %, photos once JPEGs at most 6.3 %. This one keeps every default file's
#: decode unfiltered and every JPEG-sourced photo filtered.
REFILTERED_SHARE = 0.15
