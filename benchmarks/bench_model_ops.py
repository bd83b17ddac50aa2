"""Timings behind the cost claims in hwmodel/ and sweeps/ comments, on the CPU, in one run.

    .venv/bin/python benchmarks/bench_model_ops.py

Prints, each measured in this run (median of ``--repeats`` timings of ``--calls`` calls, CPU time of
this process, after a warm-up round):

1. ``sweeps/store.py`` part files keep Parquet dictionaries: a part of the default sweep written
   uncompressed with and without them (size, write time).
2. ``sweeps/store.py`` ``TABLE_OPTIONS``: the default sweep's ``points.parquet``, and that of the
   default grid at 50 batches per scenario (25,200 points), written and read with LZ4 and no
   dictionaries vs pyarrow's default (Snappy, dictionaries).
3. ``hwmodel/io.py`` ``yaml_safe_load``: libyaml's ``CSafeLoader`` vs ``SafeLoader`` on a bundled GPU
   spec and on the GPU model's parameter file.
4. ``hwmodel/mapping.py`` ``_row_max``: the largest group word per row as one ``np.maximum.reduceat``
   over the flat words vs ``max(axis=1)``, on 2:4 masks of TD3 layer shapes.
5. ``hwmodel/sparsity.py`` ``group_counts``: adding the M slices of the grouped mask vs
   ``sum(axis=-1)``, at the M of TD3 layer shapes that group_counts adds slices for (not M = 4
   or 8, nor a multiple of 8 on a mask of at most 8,192 entries: those take other paths).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from machine import cpu_timed as timed, describe  # noqa: E402  (benchmarks/machine.py)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    import pyarrow.parquet as pq
    import yaml

    from hwmodel.io import data_path
    from hwmodel.sparsity import _grouped, group_words, nm_mask
    from sweeps import api, store

    print(describe(numpy=np.__version__))
    print(f"median of {a.repeats} x {a.calls} calls (CPU time; x20 calls for items 4 and 5)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sweep"
        api.run(None, out, workers=1, progress=False)
        table = pq.read_table(out / store.TABLE)
        part = pq.read_table(max(store.list_parts(out), key=lambda p: p.stat().st_size))
        # The default grid at 50 batches per scenario (25,200 points): a table of a bigger sweep.
        from sweeps.config import Scenario, SweepConfig

        big = SweepConfig(scenarios=[Scenario("inference", b) for b in range(1, 51)]
                          + [Scenario("train_step", 16 * b) for b in range(1, 51)])
        api.run(big, Path(tmp) / "big", progress=False)
        big_table = pq.read_table(Path(tmp) / "big" / store.TABLE)

    def written(t, **kw) -> bytes:
        buf = io.BytesIO()
        pq.write_table(t, buf, **kw)
        return buf.getvalue()

    with_dict, no_dict = {"compression": "none"}, {"compression": "none", "use_dictionary": False}
    size_d, size_n = len(written(part, **with_dict)), len(written(part, **no_dict))
    t_d = timed(lambda: written(part, **with_dict), a.calls, a.repeats)
    t_n = timed(lambda: written(part, **no_dict), a.calls, a.repeats)
    print(f"1. part of {len(part)} rows: with dictionaries {size_d / 1e3:.0f} kB in {t_d * 1e3:.2f} ms, without "
          f"{size_n / 1e3:.0f} kB in {t_n * 1e3:.2f} ms: {size_n / size_d:.1f}x the size, {(t_d - t_n) * 1e3:.2f} ms less")

    for t in (table, big_table):
        default, chosen = written(t), written(t, **store.TABLE_OPTIONS)
        calls = max(1, a.calls * len(table) // len(t))
        w_def = timed(lambda: written(t), calls, a.repeats)
        w_cho = timed(lambda: written(t, **store.TABLE_OPTIONS), calls, a.repeats)
        r_def = timed(lambda: pq.read_table(io.BytesIO(default)), calls, a.repeats)
        r_cho = timed(lambda: pq.read_table(io.BytesIO(chosen)), calls, a.repeats)
        print(f"2. points.parquet of {len(t):,} rows, LZ4 without dictionaries vs default: write {w_cho / w_def:.2f}x "
              f"the time, read {r_cho / r_def:.2f}x, size {len(chosen) / len(default):.2f}x "
              f"({w_cho * 1e3:.1f} vs {w_def * 1e3:.1f} ms, {r_cho * 1e3:.1f} vs {r_def * 1e3:.1f} ms, "
              f"{len(chosen) / 1e3:.0f} vs {len(default) / 1e3:.0f} kB)")

    for path in (data_path("gpus", "h100_sxm.yaml"), data_path("gpu_params.yaml")):
        text = path.read_text()
        slow = timed(lambda: yaml.load(text, Loader=yaml.SafeLoader), a.calls, a.repeats)
        fast = timed(lambda: yaml.load(text, Loader=yaml.CSafeLoader), a.calls, a.repeats)
        print(f"3. {path.name}: SafeLoader {slow * 1e3:.2f} ms, CSafeLoader {fast * 1e3:.2f} ms: {slow / fast:.1f}x faster")

    rng = np.random.default_rng(0)
    calls = a.calls * 20
    for shape in ((256, 17), (256, 256), (3, 256)):
        words = group_words(nm_mask(rng.standard_normal(shape), "2:4"), 4)
        starts = np.arange(0, words.size, words.shape[1])
        assert np.array_equal(words.max(axis=1), np.maximum.reduceat(words.ravel(), starts))
        t_max = timed(lambda: words.max(axis=1), calls, a.repeats)
        t_red = timed(lambda: np.maximum.reduceat(words.ravel(), starts), calls, a.repeats)
        print(f"4. {shape[0]}x{shape[1]}: max(axis=1) {t_max * 1e6:.1f} us, reduceat {t_red * 1e6:.1f} us: "
              f"{t_max / t_red:.1f}x faster")

    for shape in ((256, 17), (256, 256)):
        for m in (2, 3, 6, 16, 32):
            if m > shape[1] or (m % 8 == 0 and shape[0] * shape[1] <= 8192):
                continue
            grouped = _grouped(rng.random(shape) < 0.3, m, False).view(np.uint8)

            def slices(g=grouped, m=m):
                counts = g[..., 0].astype(np.int32)
                for j in range(1, m):
                    counts += g[..., j]
                return counts

            assert np.array_equal(slices(), grouped.sum(axis=-1, dtype=np.int32))
            t_sl = timed(slices, calls, a.repeats)
            t_sum = timed(lambda: grouped.sum(axis=-1, dtype=np.int32), calls, a.repeats)
            print(f"5. {shape[0]}x{shape[1]} M={m}: slices {t_sl * 1e6:.1f} us, sum(axis=-1) {t_sum * 1e6:.1f} us: "
                  f"slices {t_sum / t_sl:.2f}x as fast")


if __name__ == "__main__":
    main()
