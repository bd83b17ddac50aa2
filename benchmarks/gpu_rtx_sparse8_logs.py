"""The RTX 4090's 8-bit 2:4 times against the source's own search logs of the same shapes.

The bundled published rows (``slidesparse_rtx4090.csv``) and the source's cuBLASLt / cuSPARSELt
search logs are two timings of the same linear-layer shapes on the same card with the same
harness (CUDA events around back-to-back library calls, best configuration). This prints, for
fp8 and int8:

1. how far the two runs agree: mean |published / log - 1| of the dense and the 2:4 times and of
   their speedup, and how many rows are more than 20% apart (a floor for any model of these
   rows: a second timing of the same shapes is this far from the first);
2. the held-out rows of ``nmlab gpu validate``'s split whose published or logged 2:4 time is 25%
   or more above the model, each marked "run" (the published run alone is slow: the log is
   within 15% of the model) or "library" (the log is as slow), and the held-out speedup error
   with the log's 2:4 time in place of the published one;
3. the logged times no model of the hardware reaches: int8 2:4 (twice fp8 2:4's rate on the
   same bytes) slower than fp8 2:4 at the same shape and m, and twice the rows taking more than
   2.2 times as long (the library's picks change with the shape and dtype).

Log times: the best configuration (``lat_us_1``) of
``github.com/bcacdwk/vllmbench@27d91064eeb5a2d1e3e2a3f7817dd20d0dc3f985``,
``slidesparse/benchmark_kernel/{cuSPARSELt,cuBLASLt}/alg_search_results/RTX4090_cc89_py312_cu129_x86_64/
{FP8,INT8}/alg_search_{Llama3.2-1B,Llama3.2-3B,Qwen2.5-7B,Qwen2.5-14B}-FP8[_2_4].csv``
(cuSPARSELt: the ``_2_4`` files of all four models; cuBLASLt: Llama3.2-1B and 3B, and fp8
Qwen2.5-14B), keyed by (n, k) = the log's (N, K), one time per m in ``M``.

    PYTHONPATH=$PWD python benchmarks/gpu_rtx_sparse8_logs.py
"""

from __future__ import annotations

import numpy as np

from hwmodel.gpu.measurements import bundled_files
from hwmodel.gpu.validate import load_blocks, validate_block

#: The m (rows of X) of every logged shape, in the order of the time lists below.
M = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
#: cuSPARSELt 2:4, (n, k) -> best time (us) per m.
SPARSE_LOG_US = {
    "float8_e4m3fn": {
        (3072, 2048): [12.288, 12.206, 12.145, 18.739, 32.072, 50.156, 86.610, 168.366, 333.967],
        (2048, 2048): [11.796, 12.329, 13.885, 12.800, 18.739, 32.911, 62.054, 119.828, 234.578],
        (16384, 2048): [14.889, 18.514, 31.334, 59.023, 114.053, 223.293, 446.218, 925.471, 1818.767],
        (2048, 8192): [28.979, 29.264, 29.655, 67.953, 122.450, 133.693, 263.188, 416.111, 858.255],
        (3072, 3072): [24.207, 15.155, 16.159, 23.695, 42.906, 66.314, 124.129, 243.425, 509.030],
        (3072, 8192): [29.143, 29.880, 31.519, 54.968, 105.964, 161.362, 311.337, 635.638, 1267.609],
        (5120, 3072): [17.203, 17.715, 24.207, 43.459, 66.396, 109.937, 207.770, 410.541, 839.434],
        (16384, 3072): [19.784, 25.169, 43.825, 83.968, 164.168, 322.744, 649.277, 1327.370, 2643.518],
        (5120, 5120): [19.988, 20.808, 36.045, 67.727, 102.441, 171.151, 328.520, 653.803, 1339.535],
        (5120, 13824): [46.346, 47.923, 171.397, 206.397, 339.087, 494.449, 929.628, 1792.307, 3576.771],
        (7168, 5120): [27.771, 26.993, 38.441, 72.274, 140.104, 247.562, 480.911, 932.250, 1861.407],
        (27648, 5120): [104.120, 107.049, 142.438, 251.187, 477.468, 924.447, 1824.174, 3614.823, 7364.628],
        (3584, 3584): [24.330, 26.358, 27.054, 29.082, 52.634, 100.966, 179.016, 339.313, 651.858],
        (3584, 18944): [62.136, 62.259, 131.707, 154.296, 235.950, 470.282, 890.081, 1728.840, 3449.201],
        (4608, 3584): [23.716, 16.383, 28.160, 51.159, 77.822, 128.429, 220.385, 420.618, 849.695],
        (37888, 3584): [102.482, 110.244, 218.665, 252.375, 470.364, 927.969, 1787.576, 3553.442, 7201.546],
    },
    "int8": {
        (3072, 2048): [11.735, 12.165, 11.366, 14.807, 19.702, 41.267, 63.939, 122.327, 247.170],
        (2048, 2048): [11.938, 11.732, 11.510, 13.618, 18.596, 25.743, 45.916, 83.988, 163.758],
        (16384, 2048): [12.861, 17.961, 23.796, 43.807, 83.517, 162.898, 329.318, 639.939, 1305.395],
        (2048, 8192): [18.473, 26.010, 40.018, 63.959, 95.744, 100.741, 195.153, 316.805, 599.470],
        (3072, 3072): [11.407, 11.776, 13.251, 19.313, 25.723, 55.562, 90.337, 177.869, 364.605],
        (3072, 8192): [18.719, 19.476, 51.057, 83.046, 128.512, 161.096, 258.314, 467.948, 909.701],
        (5120, 3072): [11.817, 16.364, 19.231, 26.131, 55.910, 85.299, 149.094, 296.407, 601.047],
        (16384, 3072): [16.835, 24.453, 32.420, 61.418, 119.869, 242.033, 485.068, 950.579, 1931.735],
        (5120, 5120): [14.582, 24.166, 27.505, 37.315, 81.039, 180.285, 372.245, 606.802, 950.763],
        (5120, 13824): [31.867, 40.059, 63.160, 95.027, 215.388, 352.276, 818.708, 1256.878, 2546.217],
        (7168, 5120): [19.415, 26.583, 36.557, 49.275, 94.515, 181.453, 327.066, 649.605, 1333.944],
        (27648, 5120): [100.022, 104.568, 115.507, 192.881, 428.503, 656.466, 1280.717, 2544.497, 5055.652],
        (3584, 3584): [14.007, 17.101, 18.330, 23.962, 37.048, 69.448, 130.191, 238.735, 493.322],
        (3584, 18944): [37.949, 82.883, 84.540, 119.747, 173.486, 332.698, 671.416, 1256.325, 2494.321],
        (4608, 3584): [17.101, 20.910, 22.958, 29.164, 62.956, 94.986, 164.801, 307.077, 618.721],
        (37888, 3584): [95.292, 102.564, 219.259, 220.242, 345.190, 661.852, 1287.557, 2557.727, 5129.790],
    },
}
#: cuBLASLt dense, (n, k) -> best time (us) per m.
DENSE_LOG_US = {
    "float8_e4m3fn": {
        (3072, 2048): [15.256, 12.042, 19.681, 27.279, 44.544, 85.361, 165.478, 324.608, 657.920],
        (2048, 2048): [12.390, 11.242, 13.476, 18.759, 31.846, 58.348, 114.340, 219.095, 436.388],
        (16384, 2048): [19.784, 31.703, 58.860, 112.189, 221.471, 437.555, 898.785, 1806.397, 3600.343],
        (2048, 8192): [21.750, 24.105, 34.836, 57.446, 109.076, 214.385, 434.565, 865.567, 1800.456],
        (3072, 3072): [13.986, 17.183, 24.166, 37.867, 64.410, 124.887, 252.600, 485.069, 995.266],
        (3072, 8192): [21.810, 30.904, 54.866, 94.843, 164.454, 319.017, 642.478, 1317.970, 2680.341],
        (5120, 3072): [18.350, 25.149, 37.540, 60.600, 104.079, 203.571, 403.538, 822.108, 1662.136],
        (16384, 3072): [26.008, 45.466, 84.787, 164.454, 334.438, 658.289, 1333.432, 2671.144, 5418.803],
        (5120, 5120): [21.279, 33.546, 56.566, 98.796, 168.837, 332.860, 676.659, 1378.161, 2796.401],
        (5120, 13824): [40.673, 69.693, 145.633, 271.421, 462.541, 910.377, 1807.032, 3762.442, 7528.653],
        (7168, 5120): [27.648, 39.281, 72.172, 136.274, 234.598, 469.463, 948.244, 1891.451, 3889.971],
        (27648, 5120): [167.854, 176.988, 264.684, 493.691, 952.463, 1848.320, 3720.684, 7462.440, 15264.625],
    },
    "int8": {
        (3072, 2048): [12.574, 13.292, 14.006, 25.825, 41.226, 77.394, 98.939, 190.710, 398.008],
        (2048, 2048): [11.960, 12.288, 13.128, 18.596, 27.505, 50.954, 65.577, 128.983, 257.905],
        (16384, 2048): [19.169, 27.976, 51.139, 65.636, 127.959, 258.437, 518.758, 1047.593, 2132.623],
        (2048, 8192): [29.921, 30.351, 30.167, 47.759, 93.839, 180.326, 233.103, 491.356, 954.122],
        (3072, 3072): [14.561, 14.787, 18.248, 35.799, 56.381, 107.479, 139.960, 277.545, 573.460],
        (3072, 8192): [31.171, 30.228, 37.458, 83.640, 136.376, 266.240, 351.314, 734.495, 1457.828],
        (5120, 3072): [17.756, 18.084, 34.652, 54.682, 94.638, 139.039, 228.413, 465.100, 972.841],
        (16384, 3072): [23.837, 39.834, 76.431, 94.002, 187.822, 384.224, 750.571, 1512.550, 3105.096],
    },
}
DTYPES = ("float8_e4m3fn", "int8")


def logged(table: dict, dtype: str, m: float, k: float, n: float) -> float:
    """The logged time (us) of one GEMM, NaN where the logs do not have it."""
    times = table[dtype].get((int(n), int(k)))
    return float(times[M.index(int(m))]) if times is not None and int(m) in M else float("nan")


def run_agreement(meas, dtype: str) -> None:
    """Section 1: the published run against the logs, dense and 2:4."""
    rows = np.flatnonzero(meas.dtype == dtype)
    ls = np.array([logged(SPARSE_LOG_US, dtype, meas.m[i], meas.k[i], meas.n[i]) for i in rows])
    ld = np.array([logged(DENSE_LOG_US, dtype, meas.m[i], meas.k[i], meas.n[i]) for i in rows])
    both = np.isfinite(ls) & np.isfinite(ld)
    pd, ps, ld, ls = meas.dense_us[rows][both], meas.sparse_us[rows][both], ld[both], ls[both]
    dev = lambda a, b: 100 * np.mean(np.abs(a / b - 1.0))  # noqa: E731
    far = lambda a, b: int(np.sum(np.abs(np.log(a / b)) > np.log(1.2)))  # noqa: E731
    print(f"{dtype}: {both.sum()} published rows in both logs; mean |published / log - 1|: dense {dev(pd, ld):.1f}%, "
          f"2:4 {dev(ps, ls):.1f}%, speedup {dev(pd / ps, ld / ls):.1f}%; more than 20% apart: "
          f"dense {far(pd, ld)}, 2:4 {far(ps, ls)}")


def model_rows(meas, report: dict, dtype: str) -> None:
    """Section 2: held-out rows whose published or logged 2:4 time is far above the model."""
    dense, sparse = report["_pred"]
    held = np.flatnonzero(report["_scored"] & (meas.dtype == dtype))
    ls = np.array([logged(SPARSE_LOG_US, dtype, meas.m[i], meas.k[i], meas.n[i]) for i in held])
    pred = dense[held] / sparse[held]
    err = np.abs(pred / meas.speedup[held] - 1.0)
    in_log = np.isfinite(ls)
    err_log = np.abs(pred[in_log] / (meas.dense_us[held][in_log] / ls[in_log]) - 1.0)
    print(f"{dtype}: held-out speedup error {100 * err.mean():.2f}% ({held.size} rows); on the {in_log.sum()} "
          f"in the logs {100 * err[in_log].mean():.2f}% against the published 2:4 times, "
          f"{100 * err_log.mean():.2f}% against the logged ones")
    share = {"run": 0.0, "library": 0.0}
    for j, i in enumerate(held):
        pub, log, mod = meas.sparse_us[i], ls[j], sparse[i]
        if not (pub / mod > 1.25 or log / mod > 1.25):  # NaN (not logged) compares False
            continue
        kind = "run" if log / mod < 1.15 else "library" if np.isfinite(log) else "not logged"
        if pub / mod > 1.25 and kind in share:
            share[kind] += err[j]
        print(f"  {int(meas.m[i]):>5} x {int(meas.k[i]):>5} x {int(meas.n[i]):>5}  2:4 published {pub:7.1f} us, "
              f"log {log:7.1f}, model {mod:7.1f}; speedup published {meas.speedup[i]:.2f}, model {pred[j]:.2f}  {kind}")
    print(f"  share of the held-out speedup error on rows published 25%+ above the model: "
          f"run {100 * share['run'] / err.sum():.0f}%, library {100 * share['library'] / err.sum():.0f}%")


def library_picks() -> None:
    """Section 3: logged times that no model of the hardware reaches."""
    f8, i8 = SPARSE_LOG_US["float8_e4m3fn"], SPARSE_LOG_US["int8"]
    slow = [(m, k, n, i8[(n, k)][j], f8[(n, k)][j]) for (n, k) in f8 for j, m in enumerate(M)
            if i8[(n, k)][j] > 1.1 * f8[(n, k)][j]]
    print(f"int8 2:4 more than 10% slower than fp8 2:4 at the same shape and m ({len(slow)} of {len(f8) * len(M)}):")
    for m, k, n, ti, tf in slow:
        print(f"  {m:>5} x {k:>5} x {n:>5}  int8 {ti:7.1f} us, fp8 {tf:7.1f} us ({ti / tf:.2f}x)")
    for dtype, table in SPARSE_LOG_US.items():
        jumps = [(M[j], k, n, t[j], t[j + 1]) for (n, k), t in table.items() for j in range(len(M) - 1)
                 if t[j + 1] > 2.2 * t[j]]
        print(f"{dtype} 2:4, twice the rows more than 2.2x the time: "
              + "; ".join(f"m {m} -> {2 * m} at {k} x {n}: {a:.1f} -> {b:.1f} us" for m, k, n, a, b in jumps))


def main() -> None:
    for block in load_blocks(bundled_files()):
        if block.spec.name != "rtx4090":
            continue
        print("== 1. the published run against the search logs")
        for dtype in DTYPES:
            run_agreement(block.meas, dtype)
        print("== 2. held-out rows 25% or more above the model (nmlab gpu validate's split)")
        report = validate_block(block)
        for dtype in DTYPES:
            model_rows(block.meas, report, dtype)
    print("== 3. logged 2:4 times no model of the hardware reaches")
    library_picks()


if __name__ == "__main__":
    main()
