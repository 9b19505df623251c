"""``emoedge firstboot`` -> :func:`emoedge.edge.deployment.firstboot.run_firstboot`: check and apply the
first-boot file ``emoedge.yaml`` of an SD card's boot partition (run by emoedge-firstboot.service)."""

from __future__ import annotations

import sys

from emoedge.cli._common import add_parser


def cmd_firstboot(args) -> int:
    from emoedge.edge.deployment.firstboot import check_only, run_firstboot

    if args.check:
        result = check_only(args.boot_dir, args.root, templates=args.templates)
        print(result.report, end="", file=sys.stdout if result.exit_code == 0 else sys.stderr, flush=True)
        return result.exit_code
    result = run_firstboot(args.boot_dir, args.root, templates=args.templates, prefix=args.prefix)
    print(result.report, end="", file=sys.stdout if result.exit_code == 0 else sys.stderr, flush=True)
    return result.exit_code


def register(sub) -> None:
    p = add_parser(sub, "firstboot",
                   "check and apply the first-boot file emoedge.yaml of the boot partition (every boot: "
                   "re-applied when it changed; a bad file is reported and leaves the service off)",
                   epilog="exit codes: 0 applied or unchanged, 2 the file is bad or missing (the report, also in "
                          "BOOT/emoedge-firstboot.txt, names every problem), 4 the configuration could not be written")
    p.add_argument("--boot-dir", default="/boot/firmware",
                   help="the mounted boot partition holding emoedge.yaml; the report is written there")
    p.add_argument("--root", default="/", help="the root file system to configure (every path written is under it)")
    p.add_argument("--templates", help="folder of the unit templates (deploy/systemd/*.service); default: the first "
                                       "of ROOT/opt/emoedge/deploy/systemd, ROOT/opt/emoedge/systemd, "
                                       "ROOT/opt/src/emoedge/deploy/systemd, a source checkout's")
    p.add_argument("--check", action="store_true",
                   help="only check the file (against ROOT's time zones and this emoedge's profiles) and print the "
                        "report: nothing is written, neither on ROOT nor on the boot folder (a file checked on a "
                        "laptop before it goes on a card)")
    p.add_argument("--prefix", default="/opt/emoedge", help="install prefix holding venv/ (the unit's ExecStart)")
    p.set_defaults(func=cmd_firstboot)
