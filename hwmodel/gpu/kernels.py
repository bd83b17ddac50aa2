"""What cuBLASLt and cuSPARSELt run per GPU and dtype: the library kernel facts of the GPU model.

:mod:`hwmodel.gpu.model` costs a GEMM from the candidates a library kernel offers; this module
says what those are, read from the published times and the source's search logs (vllmbench
``slidesparse/search/{cuBLASLt,cuSPARSELt}_AlgSearch/alg_search_results/<GPU>_cc<cc>_*``: the
fastest algorithm, tile and split-K of every shape and m). Each table carries its evidence in
the comment above it:

* bytes of the operands, the outputs and the 2:4 weight (``OPERAND_BYTES``, ``OUTPUT_BYTES``,
  ``SPARSE_DENSITY``, ``SPARSE_META_BITS``);
* the tiles and split-K factors (``TILES``, ``SPLITS``, ``MIN_K_PER_SPLIT``), where the logs name
  fewer tiles (``KERNEL_TILES`` and the per-architecture sets it is built from,
  ``TILE_MIN_WAVES``) and where a kernel does not split K (``NO_SPLIT_K``, ``NO_SPLIT_K_ARCH``);
* kernels that run at an Ampere SM's rate (``LEGACY_SM80``, ``SM80_TILES``,
  ``SM80_OPS_PER_CLK_SM``), need part of the operand feed (``FEED_SCALE``), walk k as lone tiles
  (``LONE_TILES``, ``L2_READ_BYTES_PER_CLK``), re-read the weight (``W_REREAD``), multicast
  operand tiles (``CLUSTER_MULTICAST``), or pay a block-scaled fixed cost (``BLOCK_SCALED``,
  ``BLOCK_SCALED_DEFAULT_US``).

Keys: a table keyed per kernel is keyed by ``(compute capability, sparse, dtype)``, where the
compute capability is a full one ("8.9": Ada) or a major ("9": every Hopper part, "8": the A100
and Ada alike); the full one is read first (:func:`_table_keys`). ``NO_SPLIT_K_ARCH`` and
``CLUSTER_MULTICAST`` are keyed by major alone, ``L2_READ_BYTES_PER_CLK`` by the full compute
capability, ``TILES`` and ``SPLITS`` by ``sparse``, the byte tables and ``SM80_OPS_PER_CLK_SM``
by dtype, and ``BLOCK_SCALED`` is a set of dtypes (read by the model's geometry and by the fit,
which moves its fixed cost only where such rows exist). :func:`candidates` is the one place that
reads the per-kernel tables: it gives the :class:`Kernel` of a (GPU, dtype, dense or 2:4), which
the model's geometry costs. The tile-factor mechanics the comments name (``TILE_INTENSITY_FULL``,
:func:`tile_intensity_full`) are in :mod:`hwmodel.gpu.model`.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional, Union

from hwmodel.gpu.spec import GpuSpec

#: Operand bytes per element by dtype name.
OPERAND_BYTES = {"bfloat16": 2.0, "float16": 2.0, "float8_e4m3fn": 1.0, "int8": 1.0, "float4_e2m1": 0.5,
                 "tfloat32": 4.0}
#: Output bytes per element of the published kernels (bf16->bf16, fp16->fp16, fp8->bf16,
#: int8->int8 with int32 accumulation, fp4->bf16). The bench's own int8 path outputs int32.
OUTPUT_BYTES = {"bfloat16": 2.0, "float16": 2.0, "float8_e4m3fn": 2.0, "int8": 1.0, "float4_e2m1": 2.0,
                "tfloat32": 4.0}
#: 2:4 keeps half the values plus 2 bits of position metadata per kept value, in groups of
#: ``SPARSE_GROUP`` along K (a K that is not a multiple of it is zero-padded to one).
SPARSE_DENSITY = 0.5
SPARSE_META_BITS = 2.0
SPARSE_GROUP = 4

#: Output tiles (rows x cols) and split-K factors a GEMM library may pick, keyed by
#: ``sparse``. cuSPARSELt's kernels tile the dense operand in at least 128 rows. The published
#: 2:4 times were searched over cuSPARSELt's split-K too: at small m the RTX 4090's are 2-3x
#: below what one k-pass per tile allows, so both libraries get splits up to 8.
TILES = {False: ((64, 64), (64, 128), (128, 64), (128, 128), (128, 256), (256, 128)),
         True: ((128, 64), (128, 128), (128, 256), (256, 128))}
SPLITS = {False: (1, 2, 4, 8), True: (1, 2, 4, 8)}
#: (compute capability, sparse, dtype) whose library kernels do not split K (a compute capability
#: is a major, "9", or a full one, "8.9", as :func:`_table_keys` reads them). Hopper's
#: published times show two: cuSPARSELt's 16-bit 2:4 times at m <= 256 grow with k alone (H100
#: PCIe bf16: 14 us at k = 2048, 36 us at k = 8192, whatever n), the time of one CTA walking all
#: of k per tile (its fp8 2:4 ones: 7.2 -> 12.7 us), and the source's search logs pick split-K 1
#: there where the A100's pick 3-8; cuBLASLt's int8 (int8-output) dense times at m <= 256 are
#: 1.5-3x its fp8 ones (64x8192x2048: 29.0 us against 10.2), and its int8 kernels there use no
#: workspace, so no split-K reduction (docs/gpu_record.md, "What the data showed"). Blackwell's kernels
#: do not split either (``NO_SPLIT_K_ARCH``).
#: Ada ("8.9"): the RTX 4090's cuBLASLt int8 search logs (``RTX4090_cc89_*/INT8``, four models) pick id 21 at
#: every shape and m with workspace 0 and split-K word 1 in the descriptor, and its cuSPARSELt
#: int8 and fp8 logs (``cuSPARSELt/.../RTX4090_cc89_*/{INT8,FP8}``) give split-K 1 for the three
#: fastest configurations of every shape and m (its BF16 ones split in 2-7 at m = 64-512). The
#: published times at m = 64 grow with k at a few dozen tiles: dense int8 64 x 8192 x 2048 30.8
#: us against 14.6 at k = 2048; fp8 2:4 64 x 18944 x 3584 61.9 us (62.1 in the log), 64 x 8192 x
#: 2048 29.1 us against 12.1 at k = 2048.
#: A100 ("8.0") cuSPARSELt int8: the A100 INT8 logs (``cuSPARSELt/.../A100_cc80_*/INT8``, e.g.
#: ``alg_search_Qwen2.5-7B-FP8_2_inf.csv``: n = 3584, 4608, 37888 at k = 7168, m = 64..65536) give
#: split-K 1 at every shape and m, alg ids 0-4.
NO_SPLIT_K = {("9", True, "bfloat16"), ("9", True, "float16"), ("9", False, "int8"),
              ("8.9", False, "int8"), ("8.9", True, "int8"), ("8.9", True, "float8_e4m3fn"),
              ("8.0", True, "int8")}
#: Compute-capability majors on which neither library splits K, whatever the kernel. Blackwell:
#: the source's B200 search logs pick split-K 1 (or the library's default, no split) as the
#: fastest configuration of every shape, m = 16..16384, for cuSPARSELt's fp8 2:4 (vllmbench
#: ``slidesparse/search/cuSPARSELt_AlgSearch/alg_search_results/B200_cc100_py312_cu129_x86_64/``,
#: Llama3.2-1B and Qwen2.5-0.5B, 108 configurations each) and cuBLASLt's fp8 (same path under
#: ``cuBLASLt_AlgSearch``, Qwen2.5-0.5B: at 16 x 896 x 4864, our m x n x k, split 1 takes 8.3 us,
#: split 2 10.4), even where a few tiles walk a long k; and the published B200 times at m = 64
#: grow with k as one CTA per tile walking all of k does, dense and 2:4 alike (bf16 2:4 at m = 64:
#: 8.3 us at k = 2048-3072, 10.4 at 5120, 14.4 at 8192, 19.6 at 13824; dense 64 x 8192 x 2048:
#: 14.4 us). Its cuBLASLt int8, the sm80-class kernel of ``LEGACY_SM80``, too: its published
#: times at m = 64 are set by k alone (10.4 us at k = 2048 for n = 2048..16384, 12.4 at 2560, 14.5
#: at 3584, 18.6 at 5120) where fp8 takes 6.0-10.4 us.
NO_SPLIT_K_ARCH = {"10"}
#: (compute capability, sparse, dtype) whose library kernels deal output tiles to the
#: SMs along n first, so that one wave holds few row-blocks of X and a weight larger than the
#: usable L2 comes from DRAM again for each later group of row-blocks. cuSPARSELt's 16-bit 2:4
#: kernels on Ampere and Ada: at m >= 2048 and n >= 13824 their published A100 / RTX 4090 times
#: are 17-20% above the model without it (8-bit 2:4, dense, Hopper, Blackwell: no such excess),
#: and the source's search logs give 262-272 TOPS at n = 37888 under every A100 alg_id,
#: 350-380 at n = 3584 or 4608 (k = 3584 both); RTX 4090: 185-193 against 275-322.
#: cuBLASLt's int8 dense on Hopper (algorithm 39, 256x128 tiles, from m = 256-512): the H100 INT8
#: search logs (``cuBLASLt/alg_search_results/H100_cc90_*/INT8``) run 1,000-1,080 TOPS at m >=
#: 2048 where n <= 7168, but where the tile columns outnumber the 114 SMs (a wave holds one
#: row-block) and W is above the 50 MB L2 they fall: n x k = 27648 x 5120 (Qwen2.5-14B) 878 /
#: 777 / 749 TOPS at m = 2048 / 4096 / 8192, 37888 x 3584 (Qwen2.5-7B) 878 / 770 / 738, 16384 x
#: 3072 (Llama3.2-3B, 50 MB) 867 / 897 / 879: one W pass per 256 rows at 1.44-1.75 TB/s (0.72-0.87
#: of the 2.0 TB/s spec) at every m. Where a wave holds several row-blocks (n x k = 3584 x 18944,
#: 5120 x 13824: 68-71 MB, 28-40 columns) it keeps 884-1,053. Its fp8 kernel (algorithm 66, smaller
#: tiles) is not listed: with every Hopper dense dtype listed, the H100's fp8 dense held out went
#: from 9-10% to 15-17% (docs/gpu_record.md, "How well the model does: before and after each step",
#: measured on the model of the day).
W_REREAD = {("8", True, "bfloat16"), ("8", True, "float16"), ("9", False, "int8")}
#: (compute capability, sparse, dtype) whose library kernel is an Ampere-generation (sm80,
#: mma.sync) kernel on a GPU whose own tensor-core instructions it does not use, and which runs
#: no faster than on an Ampere SM: its peak is ``SM80_OPS_PER_CLK_SM`` (x2 for 2:4) x SMs x clock
#: where that is below the spec's. The first two also walk all of k (``NO_SPLIT_K``,
#: ``NO_SPLIT_K_ARCH``). What each cap does to the held-out and leave-one-GPU-out figures is in
#: docs/gpu_record.md, "What the data showed" (measured on the model of the day; no command reruns it):
#: * cuBLASLt's int8 (int8-output) GEMM on Blackwell: ~0.9 of 4.5 POPS at every large size (3,200
#:   ops per clock per SM at boost, 0.78 of an A100 SM's int8 rate) where cuSPARSELt's int8
#:   reaches 6 POPS on the same card; at small m 2-3x its fp8 time and a lower fixed cost at
#:   64^3 (4.8 us against 5.3-6.0), like the sm80-class int8 kernels the Hopper search logs name
#:   (ids 21/23/39/41, against 66 for bf16/fp8).
#: * cuSPARSELt's 16-bit 2:4 GEMM on Hopper: at most 753 TFLOP/s on the H100 PCIe, 0.92 of an
#:   Ampere SM's 2:4 bf16 rate x 114 SMs x boost (819), where its fp8 and int8 2:4 kernels reach
#:   1.43 and 1.55 P(FL)OP/s. Fitted alone the cap changes nothing held out (the efficiency
#:   absorbs it), but across GPUs the H100's 2:4 efficiency (0.47 of the spec without it) no
#:   longer drags the pooled one down.
#: * cuSPARSELt's fp8 2:4 GEMM on Hopper (it splits K in the model: held out it is worse without
#:   split-K): its large GEMMs plateau at 1.22-1.26 PFLOP/s (median, m = 2048-16384; at most
#:   1,433), 0.87 of the 8-bit 2:4 rate of an Ampere-class SM x 114 SMs x boost (1,639) and 0.44
#:   of the spec's at boost, where the native fp8 dense kernel reaches 916 (2:4 / dense
#:   1.45-1.56, against 1.72 on the B200 and 2.02 on the RTX 4090); from m = 1024 its
#:   median rate is 1.6-1.8x (its best 1.8-1.9x) the capped 16-bit 2:4 kernel's, near the 2x of
#:   8-bit to 16-bit operands on one mma.sp data path. Fitted alone the efficiency absorbs the
#:   cap, but the H100's fp8 2:4 efficiency (0.42 of the spec without it) no longer drags the
#:   pooled one down, which the RTX 4090's and the H100's own fp8 2:4 predicted from the other
#:   GPUs show.
#: Hopper's own int8 dense kernels (also ids 21/39) reach 1,097 TOPS, 1.34x the Ampere SM rate,
#: so the cap does not hold for them and they are not listed. Hopper's int8 2:4 times equal its
#: fp8 2:4 ones shape by shape (median ratio 1.02), but capped too its efficiency is no nearer
#: the other GPUs' (0.95 of the cap against 0.51 of the spec; theirs 0.67-0.70 of the spec), and
#: capping it makes the H100's and the RTX 4090's int8 2:4 predicted from the others worse: it is
#: not listed.
LEGACY_SM80 = {("10", False, "int8"), ("9", True, "bfloat16"), ("9", True, "float16"), ("9", True, "float8_e4m3fn")}
#: (compute capability, sparse, dtype) -> the tiles of ``KERNEL_TILES`` whose kernel is the
#: sm80-class one and runs at the Ampere SM's rate (as ``LEGACY_SM80``, tile factor scaled the same
#: way), where the table's other tiles run at the native rate. Hopper cuBLASLt int8: the logs pick
#: algorithm 21 (64x128) at m <= 128-256 and 39 (256x128) from m = 256-512 (``KERNEL_TILES``). At m
#: = 64, 16-20 of those 64x128 tiles (fewer than the 114 SMs, W in L2), one per SM and each
#: walking all of k, run the extra k at 5.2-5.3 TOPS per SM (published, n = 2048: k = 2048 10.0
#: us, k = 8192 29.0 us; n = 2560: k = 2560 11.6 us, k = 6912 25.3 us), 0.72-0.74 of an Ampere
#: SM's int8 rate at boost (7.19 TOPS) and 0.37 of Hopper's (14.4): the Blackwell int8 kernel's
#: 0.73 (``LEGACY_SM80``); the H100's int8 dense efficiency fitted with this rule (hopper int8
#: dense in hwmodel/data/gpu_params.yaml, ``nmlab gpu fit``: 0.75) gives 5.4. The large GEMMs
#: (algorithm 39) reach 1,097 TOPS, 1.34x the Ampere rate, so that tile is not capped. At the
#: native rate with its 0.67 tile factor the model had those m = 64-128 rows with k >= 5120 and
#: W in L2 too fast, and the fitted cuBLASLt fixed cost rose to make up part of it (docs/gpu_record.md,
#: "What the data showed", has the figures, measured on the model without this rule).
SM80_TILES = {("9", False, "int8"): ((64, 128),)}
#: Dense tensor operations per clock per SM of an Ampere (sm80) SM, from the A100 datasheet:
#: 312 TFLOP/s bf16/fp16, 156 tf32, 624 TOPS int8 on 108 SMs at 1410 MHz. fp8 (which Ampere
#: lacks): the int8 rate, as the mma.sync / mma.sp e4m3 shapes (PTX, sm_89) run at the int8 rate
#: of the same SM on every part that has them (RTX 4090: 660.6 TFLOP/s fp8 with fp16 accumulate,
#: 660.6 TOPS int8; L40S: 733 and 733).
SM80_OPS_PER_CLK_SM = {"bfloat16": 2048.0, "float16": 2048.0, "tfloat32": 1024.0, "int8": 4096.0,
                       "float8_e4m3fn": 4096.0}
#: (compute capability, sparse, dtype) -> the only output tiles (rows of X x columns of W)
#: the library's kernels have, where the source's search logs name them. cuBLASLt int8 on
#: Hopper: the fastest is always algorithm 21 or 39 (H100_cc90 INT8 logs of Llama3.2-1B and
#: Qwen2.5-7B: 21 at m <= 128-256, 39 from m = 256-512), and their descriptors (``algo_data``)
#: hold tile id 18 (128x64 as cuBLASLt's m x n, its m = our n) for 21 and tile id 23 (128x256)
#: for 39, split-K 1 in both. cuBLASLt int8 on Blackwell (no B200 logs): its published times
#: step in waves of 64x128 tiles on the 148 SMs, each walking all of k (k = 2048: 10.4 us for up
#: to 148 tiles, m from 64 to 512 at n = 2048; 16.5 us for 149-296; 27.5 us for 512 tiles; 84 us
#: for 2048), the tile of algorithm 21 in the H100 and A100 logs.
#: cuBLASLt int8 on Ada ("8.9"): algorithm 21 with tile id 18 (64 rows of X x 128 columns of W) up
#: to m = 1024 and tile id 24 (256x128 as cuBLASLt's m x n: 128 rows of X x 256 of W) from m =
#: 2048 (from m = 256 at n = 37888) in the RTX 4090 logs (``RTX4090_cc89_*/INT8``, Qwen2.5-7B:
#: every (n, k) of 4608/3584/37888 x 3584 and 3584 x 18944).
#: cuSPARSELt's 16-bit 2:4 on Ampere and Ada (``W_REREAD``): tiles of 128 rows of X only. Where
#: their W is far above the L2 its time is one W pass per 128 rows of X at the DRAM rate, for every
#: m: the RTX 4090 BF16 log (``cuSPARSELt/.../RTX4090_cc89_*/BF16/alg_search_Qwen2.5-7B-FP8_2_inf``,
#: n x k = 37888 x 7168, a 305 MB 2:4 weight) runs 185-191 TOPS from m = 1024 to 16384, the fastest
#: alg_id (1) and split-K 1 each time: 16384 rows take 46.8 ms, 128 passes of W at 836 GB/s (0.83 of
#: the 1008 GB/s spec; m = 1024 and 2048: 812 and 836 GB/s; its FP16 log the same, 185-191 TOPS
#: from m = 512, alg_id 3); the A100 one (``A100_cc80_*``, same shapes) 1.18-1.20 TB/s from m = 1024
#: to 65536. None of the four alg_ids makes fewer passes (the slowest runs 101-102 TOPS: one W pass
#: per 64 rows at 893 GB/s); 256-row tiles would halve them and put the RTX 4090 at its compute
#: rate (its log reaches 318-331 TOPS at n = 3584 and 4608). The published times agree: with
#: 256-row tiles the model was 19-26% fast on RTX 4090 bf16 2:4 at n = 27648 and 37888 (m >= 256),
#: 9-16% on the A100's (m >= 1024).
#: cuBLASLt bf16/fp16/fp8 on Blackwell (``BLACKWELL_MMA_TILES``): the B200 fp8 search log
#: (``slidesparse/search/cuBLASLt_AlgSearch/alg_search_results/B200_cc100_*/alg_search_Qwen2.5-0.5B-FP8_out-BF16.json``,
#: algorithm 66 at every shape and m) names tile ids 12, 13, 17, 20, 23, 29, 33, 80, 124, 165, 193,
#: 312, 313 and 394: 32x64, 64x32, 64x128, 128x128, 128x256, 128x160, 128x96, 40x64, 72x64,
#: 112x128, 160x64, 64x16, 64x24 and 128x16 in cuBLASLt's m x n, widths that are no power of two,
#: each one side 64 or 128 by a multiple of 8 or 16: the tcgen05 MMA shapes (CUTLASS
#: ``python/cutlass_library/sm100_shapes.py``: M = 128 with N = 16..256 in steps of 16), in either
#: orientation, picked so the tiles fill the 148 SMs. From m = 1024 the log's picks are all M = 128
#: with N = 64..256 (96, 112, 128, 160, 256); the narrower ones come at m <= 128 with n <= 1152,
#: where every time sits at the ~5.5 us floor, so the model offers the M = 128 family with N >= 64
#: and the 64-row tiles of the generic set.
BLACKWELL_MMA_TILES = tuple(sorted({(128, w) for w in range(64, 257, 16)} | {(w, 128) for w in range(64, 257, 16)}
                                   | {(64, 64), (64, 128), (128, 64)}))
#: cuBLASLt fp8 on Hopper: no tile 256 wide. The H100 fp8 descriptors (``H100_cc90_*/FP8``,
#: Llama3.2-1B, Qwen2.5-7B and 14B, every m from 64 to 16384: 108 picks of algorithm 66) never
#: name one (the widest is 160x128, 28 times; then 128x128, 20, and 128x144, 13), where its bf16
#: ones take 256x128 18 times and 128x256 10 of 108. Held-out figures do not move (the fit on
#: the H100's own rows rarely picks them); fitted on the other three GPUs they no longer pull the
#: pooled fp8 efficiency (leave-one-GPU-out before and after: docs/gpu_record.md, "How well the
#: model does: before and after each step").
HOPPER_FP8_TILES = tuple(t for t in TILES[False] if max(t) < 256)
#: cuSPARSELt 16-bit 2:4 on Hopper (no split-K, the Ampere 2:4 rate: ``NO_SPLIT_K``, ``LEGACY_SM80``):
#: tiles 192 wide in place of the 256-wide ones. Its search logs name only alg ids (21 for BF16,
#: ``cuSPARSELt/alg_search_results/H100_cc90_*/BF16``, no tile descriptor), but the published H100
#: PCIe times at m = 512-1024 are one wave of 128x192 or 192x128 tiles at the capped rate (2 x 128
#: x 192 x k FLOP at 0.95 x 7.19 TFLOP/s per SM, plus the ~6.4 us fixed cost), where 128-multiple
#: tiles need two waves of 128x128 or one of twice the work: m x k x n = 512 x 3072 x 5120 (108
#: tiles) 28.1 us published, 28.4 by hand; 512 x 3584 x 4608 31.4; 512 x 13824 x 5120 114.7;
#: 1024 x 2048 x 2048 (96 192x128 tiles) 21.4; 1024 x 8192 x 2048 62.9 (what the model with
#: 256-wide tiles gave and the held-out figures before and after: docs/gpu_record.md, "What the
#: data showed", measured on the model of the day). At m <= 256 (128x64) and m >= 2048 (full tile
#: rate either way) little changes. Keeping the 256-wide tiles as well fits as well held out but
#: puts one split seed's crossovers a step further off.
HOPPER_SPARSE16_TILES = ((128, 64), (128, 128), (128, 192), (192, 128))
#: cuBLASLt fp8 on Ada: no tile 256 wide by 128. The RTX 4090's fp8 descriptors
#: (``cuBLASLt/alg_search_results/RTX4090_cc89_py312_cu129_x86_64/FP8/alg_search_*.json``:
#: Llama3.2-1B and 3B, Qwen2.5-7B and 14B, four (n, k) each, m = 64..65536: 176 picks, all
#: algorithm 35) name, as rows of X x columns of W, 128x64 81 times (the pick at m >= 1024),
#: 64x64 29 and 64x128 25 (m <= 512), 128x128 19, 256x64 15 (m >= 16384) and 32x64 7 (m = 64-128,
#: n <= 3584), never 128x256 or 256x128; split-K 1 in 163, 2-6 in 13 (m <= 256, mostly k >=
#: 8192). The 32x64 tile is left out: with it the held-out figures do not move and one split
#: seed's crossover goes a step further off.
ADA_FP8_TILES = ((64, 64), (64, 128), (128, 64), (128, 128), (256, 64))
#: cuSPARSELt 16-bit 2:4 on Ampere and Ada: the 2:4 tiles of 128 rows of X (the ``KERNEL_TILES``
#: notes above, ``W_REREAD``).
AMPERE_SPARSE16_TILES = tuple(t for t in TILES[True] if t[0] == 128)
KERNEL_TILES = {("9", False, "int8"): ((64, 128), (256, 128)), ("10", False, "int8"): ((64, 128),),
                ("9", True, "bfloat16"): HOPPER_SPARSE16_TILES, ("9", True, "float16"): HOPPER_SPARSE16_TILES,
                ("8.9", False, "int8"): ((64, 128), (128, 256)), ("8.9", False, "float8_e4m3fn"): ADA_FP8_TILES,
                ("8", True, "bfloat16"): AMPERE_SPARSE16_TILES, ("8", True, "float16"): AMPERE_SPARSE16_TILES,
                ("10", False, "bfloat16"): BLACKWELL_MMA_TILES, ("10", False, "float16"): BLACKWELL_MMA_TILES,
                ("10", False, "float8_e4m3fn"): BLACKWELL_MMA_TILES,
                ("9", False, "float8_e4m3fn"): HOPPER_FP8_TILES}
#: (compute capability, sparse, dtype) -> {tile: the fewest waves of that tile (tiles / SMs) from
#: which the library's heuristic takes it}. The RTX 4090's cuBLASLt int8 logs (above) keep the
#: 64x128 tile while the 128x256 one would give 112 (m = 1024, n = 3584), 144 (1024 x 4608) or
#: 148 tiles (128 x 37888) on 128 SMs, and take the large tile at 224 (2048 x 3584), 288 (2048
#: x 4608) and 296 (256 x 37888): a threshold between 1.16 and 1.75 waves; 1.5 is its middle.
#: At m = 1024 the library's 64x128 pick is the slower one (3584 x 3584: 79.4 us, 331 TOPS, where
#: a 128x256 wave at the rate of m >= 2048 would take some 50 us), so the fastest-candidate rule
#: alone misses it.
TILE_MIN_WAVES = {("8.9", False, "int8"): {(128, 256): 1.5}}
#: (compute capability, sparse, dtype) -> the fraction of the operand feed per clock that
#: ``TILE_INTENSITY_FULL`` stands for which the kernel needs (:func:`tile_intensity_full`): its
#: operand bytes per clock per SM (tensor rate x bytes per operand) over an Ampere SM's (4096:
#: 2048 bf16 FLOP x 2 bytes, or 4096 int8 ops x 1), where both SMs have the same shared memory
#: per clock (128 bytes). Listed where the published times pin a lone tile's rate (kernels that
#: do not split K, ``NO_SPLIT_K``), and there the tile factor of a small tile is not seen:
#: * cuBLASLt's int8 on Ada, the Ampere kernel (algorithm 21, the A100 logs' descriptor) at 2048
#:   ops per clock (660.6 TOPS / 128 SMs / 2520 MHz): 0.5. At m = 64 its 64x128 tiles, one per
#:   SM, run at the full int8 rate: 64 x 18944 x 3584 takes 63.9 us published (64.5 us in the
#:   log), 28 tiles of 2 x 64 x 128 x 18944 ops at 5.16 TOPS per SM being 60 us, where the 0.67
#:   factor of a 64x128 tile gives 90 us.
#: * cuSPARSELt's fp8 2:4 on Ada, 2048 dense-equivalent FLOP per clock (660.6 TFLOP/s with 2:4,
#:   fp32 accumulate) on 1-byte operands: 0.5. 64 x 18944 x 3584 takes 61.9 us: 56 tiles of
#:   128x64 (cuSPARSELt's smallest), one per SM, at the full 2:4 rate take 60 us (the card boosts
#:   above the 2520 MHz of the spec's rate), with the tile factor (0.67) 90 us.
#: * cuSPARSELt's int8 2:4 on Ada (split-K 1 at every shape in the RTX4090_cc89_*/INT8 logs),
#:   4096 dense-equivalent ops per clock (1321 TOPS with 2:4 / 128 SMs / 2520 MHz): 0.5. Against
#:   the dense feed it would need all of it (1.0), but the A100's own 2:4 int8 kernel shows what an
#:   Ampere SM feeds a lone 2:4 tile: at m = 64-256 with W in L2 its published times grow by
#:   2.5-3.1 ns per k on 16-28 tiles, about 4,150 ops per clock per SM for a 128x64 tile, i.e. 42
#:   bytes per clock (128 + 32 + 8 per k step: X, the kept half of W, its metadata). The same tile
#:   at Ada's full int8 2:4 rate needs those 42 bytes, and the RTX 4090's lone tiles run at it:
#:   1.52-1.71 ns per k at m = 64, n = 2048-5120 (32-80 tiles of 16,384 ops per k step), 0.93-1.04
#:   of the per-SM 2:4 peak, where the 0.67 factor left the model slow on those rows (64 x 18944 x
#:   3584: 37.4 us published; what the rule did to the held-out figures: docs/gpu_record.md, "How
#:   well the model does: before and after each step", measured on the model of the day).
#:   Measured against the 2:4 rate of an Ampere SM (8192), Ada's fp8 2:4 entry above would be
#:   0.25; it gives its 128x64 tile the full rate either way.
#: Where every SM is busy, such a tile is bound by the GPU's L2 bandwidth instead (the L2 term):
#: a 64x128 int8 tile at the full rate needs 24 bytes per clock per SM, about twice what the
#: fitted Ada L2 moves, hence the logged 310-340 TOPS at m = 256-1024. By the same rule Ada's
#: 16-bit and dense fp8 kernels would need 0.25 and its 16-bit 2:4 0.5, but the
#: data do not pin a lone tile's rate for kernels that split K, and with those the model did no
#: better (docs/gpu_record.md, "Tried and not kept"), so they are not listed.
FEED_SCALE = {("8.9", False, "int8"): 0.5, ("8.9", True, "float8_e4m3fn"): 0.5, ("8.9", True, "int8"): 0.5}
#: Dtypes whose cuBLASLt (dense) call is block-scaled, with a fixed time per call of its own:
#: ``kernel_dense_us`` plus ``kernel_block_scaled_us``. The source's fp4 GEMMs set
#: ``CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3`` on both operands (vllmbench
#: ``slidesparse/benchmark_kernel/cuBLASLt/cublaslt_gemm.cu``: a UE4M3 scale per 16 values that
#: the kernel loads and applies; fp8 sets no scale). Published B200 dense fp4 takes 8.4-8.7 us
#: from 64^3 to 2048^3 (the k/2 GEMM it ran, ``Measurements.dense_k``), where bf16/fp16/fp8
#: dense take 5.2-6.3 us and fp4 2:4 (cuSPARSELt, no such floor) 6.2 up to 1024^3; with one fixed
#: 8.4 us per call its large squares run at one rate, 6.7 / 6.5 / 6.5 PFLOP/s at 4096^3 / 8192^3
#: / 16384^3 (5.2 / 6.3 / 6.5 with the shared ~5.5 us: 2 m n (k/2) over the time less the fixed
#: cost, the square rows of hwmodel/data/gpu_measurements/slidesparse_b200.csv; what the shared
#: cost alone did to the model: docs/gpu_record.md, "How well the model does: before and after
#: each step", measured on the model of the day). The fitted extra is ``kernel_block_scaled_us``
#: in hwmodel/data/gpu_params.yaml (``nmlab gpu fit``).
BLOCK_SCALED = {"float4_e2m1"}
#: ``kernel_block_scaled_us`` of a fit with no block-scaled rows (GPUs without fp4 data, and the
#: B200 predicted from the others): the source's RTX 5080 square logs
#: (``cuBLASLt/alg_search_results/RTX5080_cc120_*/alg_search_SQUARE_{FP4,FP8}.csv``, 25 warm-up +
#: 100 timed calls) time 128^3 dense at 4.14 us in fp4 (algorithm 70) and 3.26 us in fp8
#: (algorithm 35), both at their floor: 0.9 us more for the block-scaled call.
BLOCK_SCALED_DEFAULT_US = 0.9
#: (compute capability, sparse, dtype) -> the tiles of a kernel whose lone tiles (one wave: no more
#: tiles than SMs, split-K 1) walk k at a rate set by the SM alone, not by the kernel efficiency
#: ``eta`` of the large GEMMs: per k step the larger of the tile's tensor operations at the SM's
#: peak and its operand bytes (tm rows of X, tn columns of W as stored) at the SM's share of the L2
#: read bandwidth (``L2_READ_BYTES_PER_CLK``), combined as the smooth maximum. Where a row has such
#: a tile, the library runs it (the other candidates are not offered). A100 int8, both libraries:
#: * cuBLASLt: the logs pick algorithm 21, one 64x128 tile, split-K 1, at every m (``A100_cc80_*/
#:   INT8/alg_search_Qwen2.5-7B-FP8``). Its published times with W in L2 grow by 3.2-3.5 ns per k
#:   step on 16-80 such tiles, the same at m = 64 and 128 (64 x 8192 x 2048: 31.3 us, 128 x 8192 x
#:   2048: 33.3 us; 64 x 3584 x 3584: 17.5 us, 128: 17.3 us), 0.86 of the SM's int8 rate where the
#:   large GEMMs' fitted efficiency is about 0.62 (int8 dense of the ampere set in
#:   hwmodel/data/gpu_params.yaml, ``nmlab gpu fit``), and 192 operand bytes per k step, 39-42
#:   bytes per clock.
#: * cuSPARSELt: split-K 1 (``NO_SPLIT_K``) with alg ids 0-4 changing with m, so its 2:4 tiles; with
#:   W in L2 its times grow by 2.6-3.3 ns per k step on up to 108 tiles of 128x64 (64 x 8192 x
#:   2048: 29.0 us; 128 x 8192 x 2048: 27.0 us), 168 bytes per k step (128 of X, 32 of kept W, 8 of
#:   metadata), 36-46 bytes per clock, about half its 2:4 peak.
#: Both near 47.4 bytes per clock per SM, the GA100 whitepaper's L2 read bandwidth over its 108
#: SMs. From two waves on, every SM is busy and the fitted L2 and efficiency terms hold as before.
LONE_TILES = {("8.0", False, "int8"): ((64, 128),), ("8.0", True, "int8"): TILES[True]}
#: Compute capability -> L2 read bandwidth in bytes per clock, where the architecture's whitepaper
#: gives it: GA100 (NVIDIA A100 Tensor Core GPU Architecture whitepaper, "A100 L2 cache": 5,120
#: bytes per clock, against V100's 2,048).
L2_READ_BYTES_PER_CLK = {"8.0": 5120.0}
#: Compute-capability major -> SMs that share one L2 read of an operand tile.
CLUSTER_MULTICAST = {"9": 2.0, "10": 4.0}
#: k per split below which a split-K candidate is not offered.
MIN_K_PER_SPLIT = 256


class Kernel(NamedTuple):
    """What the library's kernels offer and do for one (GPU, dtype, dense or 2:4)."""

    tiles: tuple
    splits: tuple
    w_reread: bool
    #: Tensor operations per second of the kernel's peak, the Ampere SM's where ``LEGACY_SM80``
    #: caps it (at the boost clock), else None.
    sm80_peak: Optional[float]
    #: SMs that share one L2 read of an operand tile (``CLUSTER_MULTICAST``).
    multicast: float
    #: Tensor operations per second the kernel runs at: :func:`boost_peak`, capped at ``sm80_peak``
    #: where that is set.
    peak: float
    #: Per tile (same order as ``tiles``): the fewest waves from which the library takes it
    #: (0: any number, ``TILE_MIN_WAVES``).
    min_waves: tuple
    #: Operand feed per clock the kernel needs, as a fraction of ``TILE_INTENSITY_FULL``'s.
    feed: float
    #: Per tile (same order as ``tiles``): tensor operations per second of the Ampere SM's rate
    #: that tile alone runs at (``SM80_TILES``), else None (the kernel's ``peak``).
    tile_sm80_peak: tuple
    #: Tiles whose lone waves walk k at the SM's own rate (``LONE_TILES``), else ().
    lone_tiles: tuple = ()
    #: Bytes per clock of L2 read bandwidth per SM that those lone tiles read their operands at
    #: (``L2_READ_BYTES_PER_CLK`` over the SMs); 0 without lone tiles.
    lone_l2_bytes_per_clk_sm: float = 0.0

    def column(self, tile: tuple, split: int = 1) -> int:
        """Index of the (tile, split-K) candidate in a geometry's per-candidate columns (tile-major,
        splits inside, as :class:`~hwmodel.gpu.model.Geometry` builds them)."""
        return self.tiles.index(tile) * len(self.splits) + self.splits.index(split)


def boost_peak(spec: GpuSpec, dtype: str, sparse: bool) -> float:
    """The spec's tensor operations per second at the boost clock: datasheet rates hold at the
    tensor clock, and a short run boosts above it."""
    return spec.peak_flops(dtype, sparse) * spec.boost_clock_mhz / spec.tensor_clock_mhz


def _sm80_peak(spec: GpuSpec, dtype: str, sparse: bool) -> float:
    """Tensor operations per second of ``spec``'s SMs at an Ampere SM's per-clock rate, at boost."""
    sm80_rate = SM80_OPS_PER_CLK_SM[dtype] * (2.0 if sparse else 1.0)  # 2:4 doubles the rate
    return sm80_rate * spec.sm_count * spec.boost_clock_mhz * 1e6


def _table_keys(spec: GpuSpec, sparse: bool, dtype: str) -> tuple[tuple, tuple]:
    """The keys every kernel table is read with, most specific first: the full compute capability
    ("8.9": Ada, whose major the A100 shares), then its major ("8")."""
    cc = spec.compute_capability
    return (cc, sparse, dtype), (cc.split(".")[0], sparse, dtype)


def _lookup(table: Mapping, keys: tuple, default: Any) -> Any:
    """The entry of the first of ``keys`` that ``table`` has, else ``default``."""
    return next((table[key] for key in keys if key in table), default)


def _listed(table: Union[set, frozenset], keys: tuple) -> bool:
    """Whether ``table`` lists any of ``keys``."""
    return any(key in table for key in keys)


def candidates(spec: GpuSpec, dtype: str, sparse: bool) -> Kernel:
    """The :class:`Kernel` of this GPU, dtype and kind: tiles and split-K factors the library
    offers, and the per-architecture kernel tables (the one place that reads them)."""
    keys = _table_keys(spec, sparse, dtype)
    major = keys[1][0]
    legacy, sm80_tiles = _listed(LEGACY_SM80, keys), _lookup(SM80_TILES, keys, ())
    # The Ampere SM's rate, only for the kernels that run at it (other dtypes have none).
    sm80_rate = _sm80_peak(spec, dtype, sparse) if legacy or sm80_tiles else None
    sm80_peak = sm80_rate if legacy else None
    peak = boost_peak(spec, dtype, sparse)
    if sm80_peak is not None:
        peak = min(peak, sm80_peak)
    tiles = _lookup(KERNEL_TILES, keys, TILES[sparse])
    no_split = _listed(NO_SPLIT_K, keys) or major in NO_SPLIT_K_ARCH
    min_waves = _lookup(TILE_MIN_WAVES, keys, {})
    tile_sm80 = tuple(min(peak, sm80_rate) if t in sm80_tiles else None for t in tiles)
    # Lone tiles need the architecture's L2 read bandwidth: without a whitepaper figure, none.
    l2_read = L2_READ_BYTES_PER_CLK.get(spec.compute_capability)
    lone_tiles = _lookup(LONE_TILES, keys, ()) if l2_read else ()
    return Kernel(tiles, (1,) if no_split else SPLITS[sparse], _listed(W_REREAD, keys), sm80_peak,
                  CLUSTER_MULTICAST.get(major, 1.0), peak, tuple(min_waves.get(t, 0.0) for t in tiles),
                  _lookup(FEED_SCALE, keys, 1.0), tile_sm80, lone_tiles,
                  l2_read / spec.sm_count if lone_tiles else 0.0)
