"""Kernel launches fixed per call key: what an eager call of the Triton ops reuses from the first
call with the same shapes, strides, dtypes, devices and alignment, and the direct relaunch of the
compiled kernel past triton's per-call binding.

The ops' host cost per call (dispatcher, this lookup, the launches) is what a compiled model pays
on every step outside CUDA graphs; `benchmarks/RESULTS.md` (fourth session) has the numbers.
"""

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import triton

from ..weight_cache import holds_values


@functools.lru_cache(maxsize=None)
def tensor_descriptor():
    """Triton's host-side TMA descriptor class; None where this triton has none."""
    try:
        from triton.tools.tensor_descriptor import TensorDescriptor
    except ImportError:
        return None
    return TensorDescriptor


@dataclass
class KernelLaunch:
    """One kernel launch fixed by a call key (`call_key`): the kernel, its grid, the integer
    arguments after the tensors, the constexprs and launch options; for a split-K main kernel the
    fp32 partials' shape and the reduction's launch (else None: the kernel writes the output); how
    the first two tensors become TMA descriptors (None: pointers). `direct` is filled by the
    first launch (`_launch`)."""

    kernel: object
    grid: object
    ints: tuple
    meta: dict = dataclasses.field(compare=False)
    partials: Optional[tuple] = None
    reduction: Optional["KernelLaunch"] = None
    descriptor_blocks: Optional[tuple] = None  # block shapes of the first two tensors' TMA descriptors
    direct: Optional[Callable] = dataclasses.field(default=None, compare=False, repr=False)


# Relaunch a call key's compiled kernel past triton's binding (`direct_launcher`); read at its first launch.
DIRECT_LAUNCH = True
DIRECT_LAUNCH_TRITON = ("3.6.",)  # triton versions whose CompiledKernel launcher the direct launch follows


def _launch(launch: KernelLaunch, args: tuple) -> None:
    """Launch `launch.kernel` on `args` (positional: tensors, then `launch.ints`), directly where
    an earlier launch left a direct launcher."""
    if launch.direct is not None:
        launch.direct(args)
        return
    compiled = launch.kernel[launch.grid](*args, **launch.meta)
    launch.direct = direct_launcher(launch, len(args), compiled)


def direct_launcher(launch: KernelLaunch, positional: int, compiled) -> Optional[Callable]:
    """A function launching `compiled` (what `launch.kernel[grid](...)` returned) again on new
    arguments of the same call key, past triton's per-call binding, specialization and cache
    lookup: what `JITFunction.run` does once it has found the kernel, with the same arguments
    (positional, then each remaining parameter's constexpr in signature order). The call key
    fixes everything the kernel was specialized on (shapes, strides, 16-byte alignment, dtypes,
    device). None where not known to match: an autotuned kernel or a grid function, another
    triton version, a compiled kernel without the CUDA launcher (the interpreter, other GPUs)."""
    if not DIRECT_LAUNCH or not triton.__version__.startswith(DIRECT_LAUNCH_TRITON):
        return None
    if not isinstance(launch.kernel, triton.runtime.JITFunction) or callable(launch.grid):
        return None
    target = getattr(getattr(compiled, "metadata", None), "target", None)
    if getattr(target, "backend", None) != "cuda":
        return None
    params = launch.kernel.params[positional:]
    if not all(p.name in launch.meta or p.has_default for p in params):
        return None
    tail = tuple(launch.meta[p.name] if p.name in launch.meta else p.default for p in params)
    grid = tuple(launch.grid) + (1,) * (3 - len(launch.grid))
    from triton import knobs
    from triton.runtime import driver

    active = driver.active
    run, function, packed = compiled.run, compiled.function, compiled.packed_metadata

    def relaunch(args: tuple) -> None:
        stream = active.get_current_stream(active.get_current_device())
        full = (*args, *tail)
        run(*grid, stream, function, packed, compiled.launch_metadata(grid, stream, *full),
            knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook, *full)

    return relaunch


def call_key(*args) -> Optional[tuple]:
    """What fixes a call's launches: each tensor's shape, strides, dtype, device and 16-byte
    alignment (TMA), the other arguments as given; None in a trace (fake tensors hold no values)."""
    key = []
    for a in args:
        if isinstance(a, torch.Tensor):
            if not holds_values(a):
                return None
            a = (a.shape, a.stride(), a.dtype, a.device, a.data_ptr() % 16 == 0)
        key.append(a)
    return tuple(key)


class LaunchCache:
    """KernelLaunch per call key, at most `size` keys (the first met is dropped first): an eager
    call whose key was seen skips validation and planning (both depend on nothing else). Module
    knobs that plans read (`ops.PDL`, `ops.DESCRIPTOR_MIN_M`, `DIRECT_LAUNCH`, a patched plan
    function) take effect for launches built after them: `clear()` after changing one."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._launches: dict = {}

    def get(self, key: Optional[tuple]) -> Optional[KernelLaunch]:
        return None if key is None else self._launches.get(key)

    def clear(self) -> None:
        self._launches.clear()

    def put(self, key: Optional[tuple], launch: KernelLaunch) -> None:
        if key is None:
            return
        if len(self._launches) >= self._size:
            self._launches.pop(next(iter(self._launches)))
        self._launches[key] = launch


LAUNCH_CACHE_SIZE = 4096
launch_cache = LaunchCache(LAUNCH_CACHE_SIZE)


def run_launch(launch: KernelLaunch, tensors: list, out: torch.Tensor, bias: Optional[torch.Tensor],
               launcher: Callable = _launch) -> torch.Tensor:
    """Run `launch` on its input tensors (the kernel's leading pointer arguments; the first two
    as TMA descriptors where it says so), writing `out` (or the partials, then the reduction
    adding `bias`). `launcher(launch, args)` makes each kernel launch: `_launch` by default, a
    traced launch for the graph (`graph_launch`)."""
    if launch.descriptor_blocks is not None:
        descriptor = tensor_descriptor()
        tensors[0] = descriptor.from_tensor(tensors[0], list(launch.descriptor_blocks[0]))
        tensors[1] = descriptor.from_tensor(tensors[1], list(launch.descriptor_blocks[1]))
    target = out if launch.partials is None else torch.empty(launch.partials, dtype=torch.float32, device=out.device)
    launcher(launch, (*tensors, target, *launch.ints))
    if launch.reduction is not None:
        launcher(launch.reduction, (target, bias if bias is not None else target, out, *launch.reduction.ints))
    return out
