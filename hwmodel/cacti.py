"""SRAM energy, leakage and area from CACTI 7 (the binary shipped in the ``zigzag-dse`` package).

CACTI runs from a private temporary copy (binary + tech_params) with its own cfg, never inside
site-packages (zigzag's own wrapper writes there and ``rm -rf``s a folder). Answers are cached
in JSON keyed by the parameters: ``hwmodel/data/cacti_cache.json`` ships pre-filled for the
bundled designs; new SRAMs go to a user cache (``$NMLAB_CACHE_DIR`` or ``~/.cache/nmlab``).
The model itself never needs CACTI when the cache has the entry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from hwmodel.errors import NmlabError
from hwmodel.io import atomic_write, data_path

#: The nodes CACTI 7 runs at: every whole nm from 22 to 90 (its input is in um to 3 decimals).
#: It reads technology files at 22, 32, 45, 65 and 90 nm (``tech_params/<node>nm.dat``) and in
#: between interpolates their parameters linearly at the feature size given (``parameter.cc``:
#: ``TechnologyParameter::find_upper_and_lower_tech`` picks the two files, ``alpha`` weighs them;
#: 40 nm reads the 45 and 32 nm files). It ships 16 and 180 nm files too, but refuses both: 16 nm
#: is "Invalid technology nodes" (its case is commented out of ``parameter.cc``), 180 nm
#: "Feature size must be <= 90 nm".
CACTI_RANGE_NM = (22, 90)
#: Largest SRAM CACTI 7 models: it reads the size as a 32-bit int (2 GiB wraps negative).
CACTI_MAX_BYTES = (1 << 31) - 1
BUNDLED_CACHE = data_path("cacti_cache.json")


@dataclass(frozen=True)
class SramCost:
    """One SRAM as CACTI 7 sees it, at node ``cacti_nm`` (not yet scaled to the design's node).

    read_pj / write_pj: dynamic energy per access of one ``word_bits`` word.
    leakage_mw: standby leakage of all banks. area_mm2: total area.
    """

    read_pj: float
    write_pj: float
    leakage_mw: float
    area_mm2: float
    cacti_nm: int
    word_bits: int


def cacti_node(tech_nm: float) -> int:
    """The node CACTI runs at for a design at ``tech_nm``: the design's own, to the whole nm, within
    ``CACTI_RANGE_NM``; else the nearer end of it (22 nm below, 90 nm above)."""
    lo, hi = CACTI_RANGE_NM
    return int(min(hi, max(lo, round(tech_nm))))


def area_unknown_note(tech_nm: float) -> str:
    """Why a design at ``tech_nm`` has no SRAM area: CACTI ran at another node (:func:`cacti_node`),
    and its energies were scaled from there (area does not scale so simply)."""
    lo, hi = CACTI_RANGE_NM
    node = cacti_node(tech_nm)
    if lo <= tech_nm <= hi:
        why = f"CACTI 7 takes whole nm: {tech_nm:g} nm ran at {node} nm"
    else:
        why = f"CACTI 7 covers {lo}-{hi} nm, not {tech_nm:g} nm"
    return f"unknown: {why} (SRAM energies scaled from CACTI at {node} nm)"


def cache_key(capacity_bytes: int, word_bits: int, banks: int, read_ports: int, write_ports: int,
              cacti_nm: int, cell_type: str) -> str:
    return (f"sram cap={capacity_bytes} word={word_bits} banks={banks} rd={read_ports} wr={write_ports} "
            f"tech={cacti_nm}nm cell={cell_type}")


def _user_cache_path() -> Path:
    root = os.environ.get("NMLAB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "nmlab")
    return Path(root) / "cacti_cache.json"


def _read_json(path: Path) -> dict:
    """The entries of a cache file; a missing, damaged or oversized one reads as empty (each SRAM
    it lacks is computed again and saved), read within ``json_bytes`` like every JSON input."""
    from hwmodel.limits import is_file, load_json

    if not is_file(path):
        return {}
    try:
        data = load_json(path, "cacti cache")
    except NmlabError:  # oversized, not UTF-8, not JSON, nested too deeply (that was a RecursionError)
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def _entry(raw: object) -> Optional[SramCost]:
    """A cache entry as an SramCost, or None when it is not one (then CACTI runs again): finite
    non-negative figures, integer node and word width (an entry of other keys was a TypeError)."""
    from hwmodel.limits import is_int

    if not isinstance(raw, dict) or set(raw) != set(SramCost.__dataclass_fields__):
        return None
    if not all(isinstance(raw[k], (int, float)) and not isinstance(raw[k], bool) and 0 <= raw[k] < float("inf")
               for k in ("read_pj", "write_pj", "leakage_mw", "area_mm2")):
        return None
    if not (is_int(raw["cacti_nm"]) and is_int(raw["word_bits"]) and raw["cacti_nm"] > 0 and raw["word_bits"] > 0):
        return None
    return SramCost(**raw)


_memory: dict[str, SramCost] = {}


def _lookup(key: str) -> Optional[SramCost]:
    if key in _memory:
        return _memory[key]
    for path in (BUNDLED_CACHE, _user_cache_path()):
        entry = _entry(_read_json(path).get(key))
        if entry is not None:
            _memory[key] = entry
            return entry
    return None


def save_entry(key: str, cost: SramCost, path: Optional[Path] = None) -> None:
    """Add one entry to a cache file (the user cache by default), atomically."""
    path = path or _user_cache_path()
    entries = _read_json(path)
    entries[key] = asdict(cost)
    doc = {"format": "nmlab-cacti-cache", "version": 1, "tool": "CACTI 7 (zigzag-dse build)",
           "entries": dict(sorted(entries.items()))}
    with atomic_write(path, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")


def _cacti_dir() -> Path:
    try:
        import zigzag  # only for locating the shipped binary
    except ImportError:
        raise NmlabError("cacti: the zigzag-dse package (which ships CACTI 7) is not installed") from None
    return Path(zigzag.__file__).resolve().parent / "cacti" / "cacti_master"


# cfg lines we set; everything else comes from the template zigzag ships next to the binary.
def _cfg_text(template: str, capacity_bytes: int, word_bits: int, banks: int, read_ports: int,
              write_ports: int, cacti_nm: int, cell_type: str) -> str:
    subst = {
        "-size (bytes)": f"-size (bytes) {capacity_bytes}",
        "-block size (bytes)": f"-block size (bytes) {word_bits // 8}",
        "-output/input bus width": f"-output/input bus width {word_bits}",
        "-associativity": "-associativity 1",
        "-read-write port": "-read-write port 0",
        "-exclusive read port": f"-exclusive read port {read_ports}",
        "-exclusive write port": f"-exclusive write port {write_ports}",
        "-UCA bank count": f"-UCA bank count {banks}",
        "-technology (u)": f"-technology (u) {cacti_nm / 1000:.3f}",
        "-Data array cell type": f'-Data array cell type - "{cell_type}"',
        "-Data array peripheral type": f'-Data array peripheral type - "{cell_type}"',
        "-cache type": '-cache type "ram"',
    }
    out = []
    for line in template.splitlines():
        for prefix, new in subst.items():
            if line.startswith(prefix):
                line = new
                break
        out.append(line)
    return "\n".join(out) + "\n"


def run_cacti(capacity_bytes: int, word_bits: int, banks: int, read_ports: int, write_ports: int,
              cacti_nm: int, cell_type: str = "itrs-hp", timeout_s: float = 300.0) -> SramCost:
    """Run CACTI 7 once for an SRAM (in a private temp dir) and parse its CSV result."""
    src = _cacti_dir()
    binary = src / "cacti"
    if not binary.is_file():
        raise NmlabError(f"cacti: binary not found at {binary}")
    with tempfile.TemporaryDirectory(prefix="nmlab-cacti-") as tmp:
        work = Path(tmp)
        shutil.copy2(binary, work / "cacti")
        shutil.copytree(src / "tech_params", work / "tech_params")
        cfg = work / "sram.cfg"
        cfg.write_text(_cfg_text((src / "cache.cfg_temp").read_text(), capacity_bytes, word_bits, banks,
                                 read_ports, write_ports, cacti_nm, cell_type))
        try:
            proc = subprocess.run([str(work / "cacti"), "-infile", cfg.name], cwd=work, capture_output=True,
                                  text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise NmlabError(f"cacti: no result for {capacity_bytes} B, {word_bits}-bit words, {banks} banks at "
                             f"{cacti_nm} nm within {timeout_s:g} s") from None
        out = work / "sram.cfg.out"
        if proc.returncode != 0 or not out.is_file():
            tail = " ".join((proc.stdout + proc.stderr).split()[-12:])
            raise NmlabError(f"cacti: no result for {capacity_bytes} B, {word_bits}-bit words, {banks} banks at "
                             f"{cacti_nm} nm ({tail})")
        lines = [ln for ln in out.read_text().splitlines() if ln.strip()]
    header = [h.strip() for h in lines[0].split(",")]
    values = [v.strip() for v in lines[-1].split(",")]
    row = dict(zip(header, values))
    try:
        return SramCost(
            read_pj=float(row["Dynamic read energy (nJ)"]) * 1000.0,
            write_pj=float(row["Dynamic write energy (nJ)"]) * 1000.0,
            leakage_mw=float(row["Standby leakage per bank(mW)"]) * banks,
            area_mm2=float(row["Area (mm2)"]),
            cacti_nm=cacti_nm,
            word_bits=word_bits,
        )
    except (KeyError, ValueError) as exc:
        raise NmlabError(f"cacti: unexpected output ({exc})") from None


def sram_cost(capacity_bytes: int, word_bits: int, banks: int, read_ports: int, write_ports: int,
              tech_nm: float, cell_type: str = "itrs-hp") -> SramCost:
    """CACTI's answer for an SRAM at ``cacti_node(tech_nm)``: from the caches, else a fresh run."""
    node = cacti_node(tech_nm)
    key = cache_key(capacity_bytes, word_bits, banks, read_ports, write_ports, node, cell_type)
    cost = _lookup(key)
    if cost is None:
        cost = run_cacti(capacity_bytes, word_bits, banks, read_ports, write_ports, node, cell_type)
        _memory[key] = cost
        try:
            save_entry(key, cost)
        except OSError:
            pass  # an unwritable home only costs a re-run next time
    return cost


def fill_bundled_cache() -> int:
    """Run CACTI for every SRAM of the bundled designs into the shipped cache; returns entries added."""
    from hwmodel.design import bundled_designs, load_design

    have = _read_json(BUNDLED_CACHE)
    added = 0
    for name in bundled_designs():
        d = load_design(name)
        for s in d.srams:
            node = cacti_node(d.technology_nm)
            key = cache_key(s.capacity_bytes, s.word_bits, s.banks, s.read_ports, s.write_ports, node, s.cell_type)
            if key not in have:
                cost = run_cacti(s.capacity_bytes, s.word_bits, s.banks, s.read_ports, s.write_ports, node, s.cell_type)
                save_entry(key, cost, BUNDLED_CACHE)
                have[key] = asdict(cost)
                added += 1
    return added

