"""Compile one weight-only kernel for sm_90 on a machine without a GPU; print its SASS opcode counts.

    TRITON_INTERPRET=0 python tests/sass_counts.py WIDEN
    TRITON_INTERPRET=0 python tests/sass_counts.py split
    TRITON_INTERPRET=0 python tests/sass_counts.py pdl

Used by tests/test_fp8_widening.py and tests/test_fp8_split_mma.py (in a subprocess: the tests
run Triton in interpreter mode, which cannot compile). Builds the default MMA decode plan's kernel
(bf16 x, e4m3 weight, per-channel scale) with the WIDEN mode given, or the fp8 split MMA kernel of
the default block-scaled plan (128 x 128 scale blocks), or the decode kernel with bit widening and
PDL=True ("pdl"), with triton's own ptxas and reads it back with triton's cuobjdump; prints one JSON
object {opcode: count, "cp.async": PTX async copies, "griddepcontrol": PTX grid dependency controls}.
"""

import collections
import json
import os
import re
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from xpu_inductor_ext.kernels.triton_fp8 import kernels, ops

SM90 = GPUTarget("cuda", 90, 32)
ARG_TYPES = dict(x_ptr="*bf16", w_ptr="*fp8e4nv", scale_ptr="*fp32", bias_ptr="*fp32", out_ptr="*bf16",
                 M="i32", N="i32", K="i32", K_PER_SPLIT="i32", stride_xm="i32", stride_wn="i32",
                 stride_sn="i32", stride_sk="i32", stride_os="i32", stride_om="i32",
                 stride_xk="i32", stride_wk="i32", stride_on="i32")
DIVISIBLE_BY_16 = {"x_ptr", "w_ptr", "scale_ptr", "bias_ptr", "out_ptr", "N", "K", "K_PER_SPLIT",
                   "stride_xm", "stride_wn", "stride_os", "stride_om"}


def decode_kernel_constants(widen: int):
    """The decode kernel's constexprs for the default plan at M = 16, N = K = 8192, and the plan."""
    plan = ops.decode_plan(16, 8192, 8192, 0, 0, num_sms=132)
    return dict(SCALE_MODE=1, SCALE_BLOCK_N=1, SCALE_BLOCK_K=1, HAS_BIAS=False,
                SWAPPED=plan.mma_mode == ops.MMA_DOT_SWAPPED, DOT_IN_FP32=False, EVEN_K=True, WIDEN=widen,
                BLOCK_M=plan.block_m, BLOCK_N=plan.block_n, BLOCK_K=plan.block_k,
                stride_xk=1, stride_wk=1, stride_on=1, PDL=False, MASK_X_ROWS=False), plan


def split_kernel_constants():
    """The split MMA kernel's constexprs for the default block-scaled plan at M = 16, N = K = 8192."""
    plan = ops.decode_plan(16, 8192, 8192, 128, 128, num_sms=132, split_mma=True)
    return dict(SCALE_MODE=2, SCALE_BLOCK_N=128, SCALE_BLOCK_K=128, HAS_BIAS=False, EVEN_K=True,
                DOT_IN_FP32=False, SPLIT_TOP=ops.SPLIT_TOP, SPLIT_LO=ops.SPLIT_LO, BLOCK_M=plan.block_m,
                BLOCK_N=plan.block_n, BLOCK_K=plan.block_k, stride_xk=1, stride_wk=1, stride_on=1), plan


def compile_sm90(fn, constants: dict, num_warps: int, num_stages: int):
    signature, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        signature[name] = "constexpr" if name in constants else ARG_TYPES[name]
        if name in DIVISIBLE_BY_16:
            attrs[(i,)] = [["tt.divisibility", 16]]
    backend = triton.compiler.make_backend(SM90)
    options = backend.parse_options(dict(num_warps=num_warps, num_stages=num_stages))
    return triton.compile(ASTSource(fn, signature, constexprs=constants, attrs=attrs), target=SM90,
                          options=options.__dict__)


def opcode_counts(cubin: bytes) -> dict:
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([cuobjdump, "-sass", f.name], capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    for line in text.splitlines():
        found = re.match(r"\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_.]+)", line)
        if found:
            counts[found.group(1)] += 1
    return dict(counts)


def main() -> None:
    if sys.argv[1] == "split":
        kernel, (constants, plan) = kernels.fp8_weight_only_split_kernel, split_kernel_constants()
    elif sys.argv[1] == "pdl":
        kernel, (constants, plan) = kernels.fp8_weight_only_decode_kernel, decode_kernel_constants(ops.WIDEN_BITS)
        constants["PDL"] = True
    else:
        kernel, (constants, plan) = kernels.fp8_weight_only_decode_kernel, decode_kernel_constants(int(sys.argv[1]))
    compiled = compile_sm90(kernel, constants, plan.num_warps, plan.num_stages)
    counts = opcode_counts(compiled.asm["cubin"])
    counts["cp.async"] = compiled.asm["ptx"].count("cp.async.cg") + compiled.asm["ptx"].count("cp.async.ca")
    counts["griddepcontrol"] = compiled.asm["ptx"].count("griddepcontrol.launch_dependents")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
