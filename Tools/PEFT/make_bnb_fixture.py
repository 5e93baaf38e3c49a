"""Writes Tests/Fixtures/bitsandbytes/quantised.safetensors: what bitsandbytes
itself computes for a weight, so `swift test` checks Quantiser against it with
no Python. Run once with the peers venv (Tools/check-loftq installs it):
    .build/peers-venv/bin/python Tools/PEFT/make_bnb_fixture.py
- w [16, 128]: N(0, 1) with, in row 0 (absmax 1 in its first group), the
  values on bitsandbytes' NF4 decision thresholds — its CUDA kernel's, the
  floats just above them, its CPU backend's — and a group of zeros in row 1.
- nf4: quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=False)
  then dequantize_4bit (as PEFT's LoftQ calls it through Params4bit), and its absmax.
- int8: int8_vectorwise_quant (LLM.int8's row-wise absmax; PEFT's 8-bit LoftQ),
  its codes, row absmax and int8_vectorwise_dequant.
"""
import os
from fractions import Fraction

import bitsandbytes
import numpy as np
import bitsandbytes.functional as F
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
w = torch.randn(16, 128)
thresholds = [-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
              -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
              0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
              0.5016634166240692, 0.6427869200706482, 0.8614784181118011]
w[0, :64] = 0.5
w[0, 0] = 1.0


def correctly_rounded(text):
    """The float32 nearest the decimal, as a C compiler rounds `text f`
    (np.float32(text) rounds twice, through a double)."""
    exact, guess = Fraction(text), np.float32(float(text))
    candidates = [np.nextafter(guess, np.float32(-2)), guess, np.nextafter(guess, np.float32(2))]
    return min(candidates, key=lambda c: abs(Fraction(float(c)) - exact))


# dQuantizeNF4's literals (csrc/kernels.cu) as the CUDA kernel has them, the float
# just above each, and the CPU backend's float32 midpoints.
cuda = torch.tensor(np.array([correctly_rounded(repr(t)) for t in thresholds], dtype=np.float32))
code = torch.tensor(bitsandbytes.functional.get_4bit_type("nf4", device="cpu").tolist(), dtype=torch.float32)
w[0, 1:16] = cuda
w[0, 16:31] = torch.nextafter(cuda, torch.tensor(2.0))
w[0, 31:46] = (code[:-1] + code[1:]) / 2
w[1, 64:] = 0
packed, state = F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=False)
nf4 = F.dequantize_4bit(packed, state)
codes, row_absmax, _ = F.int8_vectorwise_quant(w)
int8 = F.int8_vectorwise_dequant(codes, row_absmax)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../Tests/Fixtures/bitsandbytes/quantised.safetensors")
save_file({"w": w.contiguous(), "nf4": nf4.contiguous(), "nf4_absmax": state.absmax.float().contiguous(),
           "int8": int8.float().contiguous(), "int8_codes": codes.float().contiguous(),
           "int8_row_absmax": row_absmax.float().contiguous()},
          os.path.normpath(out), metadata={"bitsandbytes": bitsandbytes.__version__, "torch": torch.__version__})
print("wrote", os.path.normpath(out))
