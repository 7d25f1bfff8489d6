# tests/cli/npy_descr.py DIR NAME=DESCR...: each DIR/NAME.npy has that NumPy
# dtype string in its header ('<u2' for bf16 bits, '<f2' for f16, '<f4').
# Exits 1 naming the first file that differs.
import sys

for spec in sys.argv[2:]:
    name, want = spec.split("=")
    d = open(f"{sys.argv[1]}/{name}.npy", "rb").read()
    header = d[10 : 10 + int.from_bytes(d[8:10], "little")].decode("latin1")
    if f"'descr': '{want}'" not in header:
        print(f"{name}.npy: expected descr {want}, header {header.strip()}")
        sys.exit(1)
