"""The ``xpu-quant`` command: ``demo``, ``inspect DIR``, ``kernels``."""

from __future__ import annotations

import argparse
import sys


def _inspect(args) -> int:
    from .table import load_reports, report_table

    reports = load_reports(args.dir)
    if not reports:
        print(f"no report.json under {args.dir} (compile with options={{'dump_dir': ...}})", file=sys.stderr)
        return 1
    print(report_table(reports, args.verbose))
    if args.graphs:
        from pathlib import Path

        for report in reports:
            folder = next(Path(args.dir).rglob(report["graph"]))
            for stage in sorted(folder.glob("*.py")):
                print(f"\n# ==== {report['graph']} / {stage.name}\n{stage.read_text()}")
    return 0


def _kernels(args) -> int:
    from ..kernels import candidates
    from ..kernels.problem import OP_FUNCTIONS
    from .table import format_table

    rows = [[op, str(i + 1), c.name, c.platforms] for op in OP_FUNCTIONS for i, c in enumerate(candidates(op))]
    print(format_table(["op", "order", "kernel", "platform"], rows))
    return 0


def _demo(args) -> int:
    from ..demo import run_demo

    return run_demo(device=args.device, mode=args.mode, scale=args.scale, hidden=args.hidden, layers=args.layers,
                    dump_dir=args.dump_dir, timing=not args.no_timing)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``xpu-quant`` and ``python -m xpu_inductor_ext``."""
    parser = argparse.ArgumentParser(prog="xpu-quant", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="compile an FP8 Llama-style decoder with backend='xpu_quant' and report")
    demo.add_argument("--device", default=None, help="cpu, cuda or xpu (default: the accelerator present, else cpu)")
    demo.add_argument("--mode", default="dynamic", choices=["weight_only", "dynamic", "static"])
    demo.add_argument("--scale", default="channel", choices=["channel", "tensor", "block"],
                      help="weight scale granularity (block: 128x128 blocks, 1x128 activation groups)")
    demo.add_argument("--hidden", type=int, default=512)
    demo.add_argument("--layers", type=int, default=2)
    demo.add_argument("--dump-dir", default=None, help="keep the dumps here (default: a temporary folder)")
    demo.add_argument("--no-timing", action="store_true", help="skip the speed comparison")
    demo.set_defaults(run=_demo)
    inspect = sub.add_parser("inspect", help="print the reports found under a dump folder as a table")
    inspect.add_argument("dir")
    inspect.add_argument("--verbose", action="store_true", help="do not clip long reasons")
    inspect.add_argument("--graphs", action="store_true", help="also print every dumped graph stage")
    inspect.set_defaults(run=_inspect)
    kernels = sub.add_parser("kernels", help="list the kernel candidates of every fused op, in order")
    kernels.set_defaults(run=_kernels)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
