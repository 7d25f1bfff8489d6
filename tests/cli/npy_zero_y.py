# tests/cli/npy_zero_y.py SRC DST: copy the .npy file SRC to DST with every data byte
# zero (the same header, so the same dtype and shape): an all-zero y.
import sys

d = open(sys.argv[1], "rb").read()
off = 10 + int.from_bytes(d[8:10], "little")  # version 1.0 header
open(sys.argv[2], "wb").write(d[:off] + bytes(len(d) - off))
