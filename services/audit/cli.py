"""`ido audit ...`: the auditors' commands. Exit status 0 when all is well, 1 when a check fails."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from contracts.canonical import parse_utc


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _moment(text: str) -> Any:
    try:
        return parse_utc(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UTC timestamp (e.g. 2024-12-31T23:59:59Z): {text!r}") from None


def _point(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", type=_date, help="count only what was booked on or before this day")
    parser.add_argument("--known-at", type=_moment, help="count only what was recorded at or before this moment (UTC)")
    parser.add_argument("--strict", action="store_true", help="check every message exactly as the projector does")


def add_audit_commands(audit: argparse.ArgumentParser) -> None:
    commands = audit.add_subparsers(dest="audit_command", required=True)

    replay = commands.add_parser("replay", help="rebuild every balance from the topics (offset 0) in memory")
    _point(replay)
    replay.add_argument("--out", type=Path, default=Path("var/audit/replay"), help="directory for JSON and CSV")

    verify = commands.add_parser("verify", help="check every stream's hash chain on Kafka and in each event store")
    verify.add_argument("--checkpoint", type=Path, help="prove the history this signed checkpoint covered is unchanged")
    verify.add_argument("--public-key", type=Path, help="trusted public key (default IDO_CHECKPOINT_PUBLIC_KEY_FILE)")
    side = verify.add_mutually_exclusive_group()
    side.add_argument("--stores-only", action="store_true")
    side.add_argument("--topics-only", action="store_true")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")

    reconcile = commands.add_parser("reconcile", help="compare each service's event store with its topic")
    reconcile.add_argument("--json", action="store_true", help="print the report as JSON")

    checkpoint = commands.add_parser("checkpoint", help="write a signed checkpoint of every chain head and offset")
    checkpoint.add_argument("--reason", default="on demand")

    export = commands.add_parser("export", help="SiSa annex, 360Giving grants, the event journal")
    exports = export.add_subparsers(dest="export_command", required=True)
    sisa = exports.add_parser("sisa", help="SiSa annex (CSV) of one year, a row per municipality")
    sisa.add_argument("--year", type=int, required=True)
    sisa.add_argument("--municipality", help="one municipality (CBS code)")
    sisa.add_argument("--out", type=Path, help="file (default: standard output)")
    _point(sisa)
    giving = exports.add_parser("360giving", help="the grants as 360Giving JSON, validated")
    giving.add_argument("--year", type=int)
    giving.add_argument("--funder-id", help="BZK's organisation identifier (default: a placeholder)")
    giving.add_argument("--out", type=Path, help="file (default: standard output)")
    _point(giving)
    journal = exports.add_parser("journal", help="every event of the topics as JSON Lines")
    journal.add_argument("--out", type=Path, help="file (default: standard output)")


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"written {out}", file=sys.stderr)


def _print(report: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(report.lines()))


def run(args: argparse.Namespace, settings: Any = None) -> int:
    from services.common.config import load_settings

    settings = settings or load_settings()
    command = args.audit_command
    if command == "replay":
        from services.audit.replay import replay_topics

        replay = replay_topics(
            settings, as_of=args.as_of, known_at=args.known_at, strict=args.strict, show_progress=True
        )
        for path in replay.write(args.out):
            print(f"written {path}")
        s = replay.stats
        print(f"{s.messages} messages: {s.applied} applied, {s.duplicates} re-sent copies, {s.invalid} invalid, "
              f"{s.refused} refused")
        for refusal in s.unproven:
            print(f"REFUSED {refusal}")
        if s.unproven:
            print(f"{len(s.unproven)} message(s) not sealed by their topic's owner: not counted")
            return 1
        return 0
    if command == "verify":
        if args.checkpoint is not None:
            from services.audit.checkpoint import verify_checkpoint

            checkpoint_report = verify_checkpoint(settings, args.checkpoint, public_key_file=args.public_key)
            _print(checkpoint_report, args.json)
            return 0 if checkpoint_report.ok else 1
        from services.audit.verify import verify

        report = verify(settings, stores=not args.topics_only, topics=not args.stores_only)
        _print(report, args.json)
        return 0 if report.ok else 1
    if command == "reconcile":
        from services.audit.reconcile import reconcile

        reconciled = reconcile(settings)
        _print(reconciled, args.json)
        return 0 if reconciled.ok else 1
    if command == "checkpoint":
        from services.audit.checkpoint import CheckpointRefused, write_checkpoint

        try:
            path = write_checkpoint(settings, reason=args.reason)
        except CheckpointRefused as refused:
            print(f"refused: {refused}", file=sys.stderr)
            return 1
        print(f"written {path}")
        return 0
    if command == "export":
        return _export(args, settings)
    raise ValueError(f"unknown audit command {command!r}")


def _export(args: argparse.Namespace, settings: Any) -> int:
    from services.audit import exports

    if args.export_command == "journal":
        from services.audit.sources import TopicReader, audited_topics

        reader = TopicReader(settings.kafka_bootstrap_servers, audited_topics(settings))
        try:
            stream = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
            count = 0
            try:
                for line in exports.journal_lines(reader):
                    stream.write(line + b"\n")
                    count += 1
            finally:
                if args.out:
                    stream.close()
        finally:
            reader.close()
        print(f"{count} events", file=sys.stderr)
        return 0
    from services.audit.replay import replay_topics

    replay = replay_topics(settings, as_of=args.as_of, known_at=args.known_at, strict=args.strict)
    if args.export_command == "sisa":
        _emit(exports.sisa_annex_csv(replay, args.year, args.municipality), args.out)
        return 0
    document = exports.giving360(replay, year=args.year, funder_id=args.funder_id or exports.FUNDER_ID)
    exports.validate_giving360(document)
    _emit(exports.dumps_exact(document, indent=2) + "\n", args.out)
    return 0
