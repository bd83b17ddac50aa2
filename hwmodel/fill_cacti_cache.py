"""``python -m hwmodel.fill_cacti_cache``: run CACTI 7 for every bundled design's SRAM levels that the
shipped cache lacks, and add them to it (a module of its own: ``hwmodel`` imports :mod:`hwmodel.cacti`,
so running that module as ``__main__`` would load it twice)."""

from hwmodel.cacti import BUNDLED_CACHE, fill_bundled_cache

if __name__ == "__main__":
    print(f"added {fill_bundled_cache()} entries to {BUNDLED_CACHE}")
