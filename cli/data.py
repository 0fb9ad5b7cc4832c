"""``rayroute data`` (counts per preference source) and ``rayroute tiers`` (model tier table)."""

from __future__ import annotations


def _data_cmd(args) -> int:
    from routers.data.preferences import data_summary
    from routers.errors import ConfigError

    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    paths = {}
    for kv in args.path or []:
        if "=" not in kv:
            raise ConfigError(f"--path {kv!r}: expected SOURCE=PATH, e.g. arena=train.csv")
        k, v = kv.split("=", 1)
        paths[k.strip()] = v
    summary = data_summary(sources, paths)
    print(f"{'source':<14}{'rows':>10}{'prompts':>10}{'models':>8}{'ties':>10}")
    for s, d in summary.items():
        print(f"{s:<14}{d['rows']:>10,}{d['prompts']:>10,}{d['models']:>8}{d['ties']:>10,}")
    return 0


def _tiers_cmd(args) -> int:
    from routers.data.tiers import tiers

    kwargs = {"sources": [s.strip() for s in args.sources.split(",") if s.strip()]} if args.sources else {}
    table = tiers(n_tiers=args.n_tiers, **kwargs)
    print(table.format_table())
    if args.json:
        print(f"wrote {table.save_json(args.json)}")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("data", help="load preference sources and print per-source row/prompt/model counts")
    p.add_argument("--sources", default="alpaca_eval,routerbench,open7",
                   help="comma-separated sources, names as in routers.data.preferences.SOURCES (default: the shared data)")
    p.add_argument("--path", action="append", metavar="SOURCE=PATH",
                   help="file/dir for a source (needed for arena and jsonl); repeatable")
    p.set_defaults(func=_data_cmd)

    p = sub.add_parser("tiers", help="fit Bradley-Terry ratings and print the model tier table")
    p.add_argument("--sources", default=None,
                   help="comma-separated preference sources (default: the tier sources of routers.data.tiers)")
    p.add_argument("--n-tiers", type=int, default=10, help="number of tiers (default: %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also write the table as JSON (TierTable.load_json)")
    p.set_defaults(func=_tiers_cmd)
