"""The bit-level fp8 -> bf16 widening of the weight-only MMA kernels (kernels._widen_fp8).

Without a GPU: the inline PTX is run through a small emulator over every fp8 code, the kernel is
compiled for sm_90 to check which instructions it widens with, and the rules that choose the
widening (device, dtype, weights holding NaN/inf codes) are checked. The same conversion runs on
an H200 in benchmarks/bench_triton_fp8.py (every code through every launch path).
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("triton")

from xpu_inductor_ext.kernels import platform  # noqa: E402
from xpu_inductor_ext.kernels.triton_fp8 import kernels, ops  # noqa: E402

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
ASM = {E4M3: kernels._E4M3_TO_BF16_ASM.value, E5M2: kernels._E5M2_TO_BF16_ASM.value}
EXACT_ASM = {E4M3: kernels._E4M3_TO_BF16_EXACT_ASM.value, E5M2: kernels._E5M2_TO_BF16_EXACT_ASM.value}


def _prmt(a: int, b: int, selector: int) -> int:
    """PTX prmt.b32 (default mode): byte i of the result is byte (nibble i & 7) of {b, a}, or that
    byte's sign bit replicated when the nibble's bit 3 is set."""
    source = a | (b << 32)
    out = 0
    for i in range(4):
        nibble = (selector >> (4 * i)) & 0xF
        byte = (source >> (8 * (nibble & 7))) & 0xFF
        if nibble & 8:
            byte = 0xFF if byte & 0x80 else 0
        out |= byte << (8 * i)
    return out


def _bf16x2(word: int) -> list:
    lanes = torch.tensor([word & 0xFFFF, word >> 16], dtype=torch.int32).to(torch.int16)
    return lanes.view(torch.bfloat16).double().tolist()


def _to_bf16x2(values) -> int:
    bits = torch.tensor(values, dtype=torch.float64).to(torch.bfloat16).view(torch.int16).int() & 0xFFFF
    return int(bits[0]) | (int(bits[1]) << 16)


def run_asm(asm: str, packed: int) -> list:
    """Emulate the widening asm on one 32-bit register of four fp8 bytes; return four floats."""
    regs = {"$2": packed}

    def value(token: str) -> int:
        return regs[token] if token in regs else int(token, 0)

    for statement in asm.strip("{} ").split(";"):
        parts = statement.replace(",", " ").split()
        if not parts or parts[0] == ".reg":
            continue
        op, dst, *srcs = parts
        a = [value(t) for t in srcs]
        if op == "mov.b32":
            regs[dst] = a[0]
        elif op == "prmt.b32":
            regs[dst] = _prmt(*a)
        elif op == "shl.b32":
            regs[dst] = (a[0] << a[1]) & 0xFFFFFFFF
        elif op == "and.b32":
            regs[dst] = a[0] & a[1]
        elif op == "add.u32":
            regs[dst] = (a[0] + a[1]) & 0xFFFFFFFF
        elif op == "mad.lo.u32":
            regs[dst] = (a[0] * a[1] + a[2]) & 0xFFFFFFFF
        elif op == "fma.rn.bf16x2":
            regs[dst] = _to_bf16x2([p * q + r for p, q, r in zip(*(_bf16x2(t) for t in a))])
        else:
            raise AssertionError(f"emulator does not know {op}")
    return _bf16x2(regs["$0"]) + _bf16x2(regs["$1"])


@pytest.mark.parametrize("fmt", [E4M3, E5M2])
def test_widening_asm_reads_every_finite_code_exactly(fmt):
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    expected = codes.view(fmt).double().tolist()
    got = []
    for i in range(0, 256, 4):  # byte j of the register is element j
        got += run_asm(ASM[fmt], sum(int(codes[i + j]) << (8 * j) for j in range(4)))
    finite = [c for c in range(256) if torch.isfinite(torch.tensor(expected[c]))]
    assert len(finite) == (254 if fmt == E4M3 else 248)
    wrong = {hex(c): (got[c], expected[c]) for c in finite if got[c] != expected[c]}
    assert not wrong
    assert any(0 < abs(expected[c]) < torch.finfo(fmt).tiny for c in finite)  # subnormals were among them
    # The bit moves know no NaN or infinity: why weights holding such codes go to the cast.
    assert all(torch.isfinite(torch.tensor(got[c])) for c in range(256) if c not in finite)


@pytest.mark.parametrize("fmt", [E4M3, E5M2])
def test_exact_widening_asm_reads_every_code_nan_and_inf_included(fmt):
    """WIDEN_BITS_EXACT (the launches fixed at compile time): the same finite reads, and NaN codes
    as NaN, e5m2's infinities as themselves."""
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    expected = codes.view(fmt).double().tolist()
    got = []
    for i in range(0, 256, 4):
        got += run_asm(EXACT_ASM[fmt], sum(int(codes[i + j]) << (8 * j) for j in range(4)))
    finite = [c for c in range(256) if math.isfinite(expected[c])]
    assert [hex(c) for c in finite if got[c] != expected[c]] == []
    assert [hex(c) for c in finite if expected[c] == 0 and math.copysign(1, got[c]) != math.copysign(1, expected[c])] == []
    special = [c for c in range(256) if c not in finite]
    assert len(special) == (2 if fmt == E4M3 else 8)
    assert [hex(c) for c in special if math.isnan(expected[c]) != math.isnan(got[c])] == []
    assert [hex(c) for c in special if math.isinf(expected[c]) and got[c] != expected[c]] == []


def _sass_counts(widen) -> dict:
    env = dict(os.environ, TRITON_INTERPRET="0")
    script = Path(__file__).with_name("sass_counts.py")
    done = subprocess.run([sys.executable, str(script), str(widen)], capture_output=True, text=True, env=env,
                          timeout=300)
    if done.returncode:
        pytest.fail(f"compiling for sm_90 failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_decode_kernel_widens_on_integer_and_fma_pipes_not_the_conversion_unit():
    """Compiled for sm_90, the default decode kernel widens with byte permutes and bf16 multiplies
    and tensor-core MMAs; the portable cast it replaces spends F2F conversions (one per element)."""
    bits, cast = _sass_counts(ops.WIDEN_BITS), _sass_counts(ops.WIDEN_CAST)

    def total(counts, prefix):
        return sum(v for k, v in counts.items() if k.startswith(prefix))

    assert total(bits, "HMMA") > 0 and total(bits, "PRMT") > 0 and total(bits, "HMUL2.BF16") > 0
    assert total(bits, "F2F.BF16") == 0 and total(bits, "F2FP.F16.E4M3") == 0
    assert total(cast, "F2F.BF16") > 0  # the test can tell the two apart


@pytest.fixture
def on_fake_sm90(monkeypatch):
    """widen_mode() as it decides on an sm_90 GPU, for a stand-in bf16 CUDA activation."""
    monkeypatch.setattr(ops, "_interpreting", lambda: False)
    monkeypatch.setattr(platform, "cuda_capability", lambda device: (9, 0))
    return SimpleNamespace(dtype=torch.bfloat16, device=torch.device("cuda", 0))


def test_widen_mode_takes_bits_only_for_bf16_on_cuda(on_fake_sm90, monkeypatch):
    w = torch.randn(32, 64).to(E4M3)
    assert ops.widen_mode(on_fake_sm90, w) == ops.WIDEN_BITS
    assert ops.widen_mode(SimpleNamespace(dtype=torch.float16, device=on_fake_sm90.device), w) == ops.WIDEN_CAST
    assert ops.widen_mode(torch.randn(2, 64).to(torch.bfloat16), w) == ops.WIDEN_CAST  # a CPU tensor
    monkeypatch.setattr(platform, "cuda_capability", lambda device: (7, 5))  # no bf16x2 fma
    assert ops.widen_mode(on_fake_sm90, w) == ops.WIDEN_CAST


@pytest.mark.parametrize("fmt,code", [(E4M3, 0x7F), (E4M3, 0xFF), (E5M2, 0x7C), (E5M2, 0xFE)])
def test_weights_holding_nan_or_inf_codes_go_to_the_cast(on_fake_sm90, fmt, code):
    w = torch.randn(32, 64).to(fmt)
    assert ops.widen_mode(on_fake_sm90, w) == ops.WIDEN_BITS
    w.view(torch.uint8)[3, 5] = code  # in place: bumps the version, so the cached answer is stale
    assert ops.widen_mode(on_fake_sm90, w) == ops.WIDEN_CAST
    assert ops.widen_mode(on_fake_sm90, w.view(torch.uint8).view(fmt)) == ops.WIDEN_CAST  # a fresh view


def test_finite_code_cache_reads_each_weight_once(monkeypatch):
    cache = ops._FiniteCodeCache(size=2)
    reads = []
    real_view = torch.Tensor.view

    def counting_view(self, *args):
        if args == (torch.uint8,):
            reads.append(1)
        return real_view(self, *args)

    w1, w2, w3 = (torch.randn(8, 16).to(E4M3) for _ in range(3))
    monkeypatch.setattr(torch.Tensor, "view", counting_view)
    assert cache(w1) and cache(w1) and cache(w1[:])  # a view of the same storage hits
    assert len(reads) == 1
    cache(w2), cache(w3)  # w1 falls out of a cache of two
    assert cache(w1) and len(reads) == 4
    with torch.inference_mode():
        inference_weight = torch.randn(8, 16).to(E4M3)
    assert cache(inference_weight) and cache(inference_weight) and len(reads) == 5


def test_finite_code_cache_knows_nothing_inside_a_trace():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        fake = torch.empty(8, 16, dtype=E4M3)
    assert ops.weight_codes_finite(fake) is None


def test_non_finite_codes_are_found_in_any_chunk(monkeypatch):
    monkeypatch.setattr(ops, "FINITE_CHECK_CHUNK_BYTES", 64)  # rows of 32 bytes: two rows a chunk
    w = torch.randn(9, 32).to(E4M3)
    assert ops._codes_finite(w) and ops._codes_finite(w.t()) and ops._codes_finite(w[:0])
    w.view(torch.uint8)[8, 31] = 0xFF  # the last, partial chunk
    assert not ops._codes_finite(w) and not ops._codes_finite(w.t())


def test_pdl_trigger_only_where_asked_and_only_on_eager_cuda_calls():
    """PDL=True puts the grid-dependency trigger into the decode kernel's sm_90 code (the split-K
    reduction then launches early and waits); the default build has none. On the CPU, under the
    interpreter and for tensors without values the launchers never ask for it."""
    assert _sass_counts("pdl")["griddepcontrol"] == 1
    assert _sass_counts(ops.WIDEN_BITS)["griddepcontrol"] == 0
    assert not ops.use_pdl(torch.randn(4, 4))
    assert not ops.use_pdl(torch.empty(4, 4, device="meta"))
