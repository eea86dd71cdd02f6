"""`ido audit ...`: the auditors' commands.

Exit status, the same for every command so that a script can trust it (``services/audit/exit_status.py``,
printed by each command's ``--help`` and listed in docs/audit.md): 0 when everything was read and
checked and nothing was found; 1 when the command ran to its end and found a problem (each is
printed); 2 when it could not run: then nothing was checked, so it never says 0 or 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from datetime import date
from pathlib import Path
from typing import Any

from contracts.canonical import parse_utc
from services.audit.exit_status import COULD_NOT_RUN, FOUND, OK, exit_status_text


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


def _add(commands: Any, name: str, status: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with its exit statuses (those of the commands named ``status...``)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, epilog=exit_status_text(status), formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
    )
    return parser


def add_audit_commands(audit: argparse.ArgumentParser) -> None:
    audit.epilog = exit_status_text()
    audit.formatter_class = argparse.RawDescriptionHelpFormatter
    commands = audit.add_subparsers(dest="audit_command", required=True)

    replay = _add(commands, "replay", "replay", help="rebuild every balance from the topics (offset 0) in memory")
    _point(replay)
    replay.add_argument("--out", type=Path, default=Path("var/audit/replay"), help="directory for JSON and CSV")

    verify = _add(commands, "verify", "verify", help="check every stream's hash chain on Kafka and in each event store")
    verify.add_argument(
        "--since", "--checkpoint", dest="since", type=Path, metavar="CHECKPOINT",
        help="prove every log extends this signed checkpoint, or name the first event that breaks it",
    )
    _trust(verify)
    side = verify.add_mutually_exclusive_group()
    side.add_argument("--stores-only", action="store_true")
    side.add_argument("--topics-only", action="store_true")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")

    reconcile = _add(commands, "reconcile", "reconcile", help="compare each service's event store with its topic")
    reconcile.add_argument("--json", action="store_true", help="print the report as JSON")

    checkpoint = _add(
        commands, "checkpoint", "checkpoint",
        help="sign a tree head over every event store and topic partition (the checkpoint key)",
    )
    checkpoint.add_argument("--reason", default=None, help="recorded in the head (default: on demand / scheduled)")
    checkpoint.add_argument(
        "--every", type=float, metavar="SECONDS",
        help="run as the checkpoint process: a head every SECONDS until SIGTERM",
    )

    prove = _add(
        commands, "prove", "prove", help="inclusion proof of an event, or consistency proof of two checkpoints"
    )
    prove.add_argument("event_id", nargs="?", help="the event to prove (store and topic logs where present)")
    prove.add_argument("--checkpoint", type=Path, help="prove against this head (default: the latest)")
    prove.add_argument("--consistency", nargs=2, type=Path, metavar=("OLD", "NEW"),
                       help="prove the NEW checkpoint's logs extend the OLD one's")
    prove.add_argument("--out", type=Path, help="file (default: standard output)")
    _trust(prove)

    export = _add(commands, "export", "export ", help="SiSa annex, 360Giving grants, the event journal")
    exports = export.add_subparsers(dest="export_command", required=True)
    sisa = _add(exports, "sisa", "export sisa", help="SiSa annex (CSV) of one year, a row per municipality")
    sisa.add_argument("--year", type=int, required=True)
    sisa.add_argument("--municipality", help="one municipality (CBS code)")
    sisa.add_argument("--out", type=Path, help="file (default: standard output)")
    _point(sisa)
    giving = _add(
        exports, "360giving", "export 360giving",
        help="the grants (SPUK IDO and bridging) as 360Giving JSON, checked against the official schema",
        description="Identifiers come from IDO_360G_PREFIX, IDO_360G_FUNDER_ID, IDO_360G_KB_ID and\n"
        "IDO_360G_MUNICIPALITY_IDS_FILE; one not set is written as a marked placeholder, with a warning.",
    )
    giving.add_argument("--year", type=int, help="SPUK grants of this grant year, bridging grants awarded in it")
    giving.add_argument("--publishable", action="store_true",
                        help="refuse (exit 1) rather than write placeholder identifiers")
    giving.add_argument("--out", type=Path, help="file (default: standard output)")
    _point(giving)
    journal = _add(exports, "journal", "export journal", help="every event of the topics as JSON Lines")
    journal.add_argument("--out", type=Path, help="file (default: standard output)")


def _trust(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--public-key", type=Path, help="trusted public key (default IDO_CHECKPOINT_PUBLIC_KEY_FILE)")
    parser.add_argument("--leaves", type=Path, help="the leaves file (default: leaves.sqlite beside the checkpoint)")


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
    from kafka.errors import KafkaError

    from services.common.config import load_settings

    settings = settings or load_settings()
    try:
        return _run(args, settings)
    except (KafkaError, TimeoutError) as error:
        print(f"ido audit: the broker could not be read ({type(error).__name__}: {error})", file=sys.stderr)
        return COULD_NOT_RUN
    except ValueError:
        raise  # a setting or an argument: `ido` names it and exits 2
    except OSError as error:
        print(f"ido audit: could not run: {error}", file=sys.stderr)
        return COULD_NOT_RUN
    except Exception:  # noqa: BLE001 - Python's own exit status for it, 1, would say "a problem found"
        traceback.print_exc()
        print("ido audit: could not run: an unexpected error (above); nothing was checked", file=sys.stderr)
        return COULD_NOT_RUN


def _run(args: argparse.Namespace, settings: Any) -> int:
    command = args.audit_command
    if command == "replay":
        from services.audit.replay import replay_topics
        from services.common.collector import settle

        settle()  # a process of its own for one stream of 10^6 messages (services/common/collector.py)
        replay = replay_topics(
            settings, as_of=args.as_of, known_at=args.known_at, strict=args.strict, show_progress=True
        )
        for path in replay.write(args.out):
            print(f"written {path}")
        s = replay.stats
        print(f"{s.messages} messages: {s.applied} applied, {s.duplicates} re-sent copies, {s.invalid} invalid, "
              f"{s.refused} refused")
        return _replay_findings(replay, sys.stdout)
    if command == "verify":
        if args.since is not None:
            from services.audit.checkpoint import verify_since

            since = verify_since(
                settings, args.since, public_key_file=args.public_key, leaves_file=args.leaves,
                stores=not args.topics_only, topics=not args.stores_only,
            )
            _print(since, args.json)
            return OK if since.ok else FOUND
        from services.audit.verify import verify

        report = verify(settings, stores=not args.topics_only, topics=not args.stores_only)
        _print(report, args.json)
        return OK if report.ok else FOUND
    if command == "reconcile":
        from services.audit.reconcile import reconcile

        reconciled = reconcile(settings)
        _print(reconciled, args.json)
        return OK if reconciled.ok else FOUND
    if command == "checkpoint":
        from services.audit.checkpoint import CheckpointRefused, run_every, write_checkpoint

        if args.every is not None:
            return run_every(settings, args.every, reason=args.reason or "scheduled")
        try:
            path = write_checkpoint(settings, reason=args.reason or "on demand")
        except CheckpointRefused as refused:
            print(f"refused: {refused}", file=sys.stderr)
            return FOUND
        print(f"written {path}")
        return OK
    if command == "prove":
        return _prove(args, settings)
    if command == "export":
        return _export(args, settings)
    raise ValueError(f"unknown audit command {command!r}")


def _replay_findings(replay: Any, stream: Any) -> int:
    """Prints every problem the replay found (a message skipped, refused or applied out of order, a posting
    recorded after its year's close) on ``stream``; FOUND if there was one. A re-sent copy of an event is
    no problem: delivery is at least once."""
    s = replay.stats
    for refusal in s.unproven:
        print(f"REFUSED {refusal}", file=stream)
    unproven = set(s.unproven)
    for problem in s.problems:
        if problem not in unproven:
            print(f"PROBLEM {problem}", file=stream)
    for late in s.after_close:
        print(f"AFTER CLOSE event {late['event_id']} ({late['event_type']}) of {late['municipality_code']} "
              f"{late['year']} recorded at {late['recorded_at']}: counted, but recorded after the year's close",
              file=stream)
    if s.unproven:
        print(f"{len(s.unproven)} message(s) not sealed by their topic's owner: not counted", file=stream)
    if s.after_close:
        print(f"{len(s.after_close)} posting(s) or reversal(s) recorded after their year's close: counted, "
              "to be looked at: exit status 1", file=stream)
    if not s.problems and not s.after_close:
        return OK
    if s.problems:
        print(f"{len(s.problems)} problem(s) in the topics ({s.invalid} invalid, {s.refused} refused): exit status 1",
              file=stream)
    return FOUND


def _prove(args: argparse.Namespace, settings: Any) -> int:
    from services.audit.prove import ProofRefused, prove_consistency, prove_inclusion

    if (args.event_id is None) == (args.consistency is None):
        raise ValueError("give either EVENT_ID or --consistency OLD NEW")
    try:
        if args.consistency is not None:
            if args.checkpoint is not None:
                raise ValueError("--checkpoint goes with EVENT_ID, not with --consistency")
            old, new = args.consistency
            document, problems = prove_consistency(
                settings, old, new, public_key_file=args.public_key, leaves_file=args.leaves
            )
        else:
            document = prove_inclusion(
                settings, args.event_id, checkpoint=args.checkpoint, public_key_file=args.public_key,
                leaves_file=args.leaves,
            )
            problems = []
    except ProofRefused as refused:
        print(f"no proof: {refused}", file=sys.stderr)
        return FOUND
    _emit(json.dumps(document, indent=1, ensure_ascii=False) + "\n", args.out)
    for problem in problems:
        print(f"NOT CONSISTENT {problem}", file=sys.stderr)
    return OK if not problems else FOUND


def _export(args: argparse.Namespace, settings: Any) -> int:
    from services.audit import exports

    if args.export_command == "journal":
        from services.audit.sources import TopicReader, audit_kafka_config, audited_topics

        reader = TopicReader(audit_kafka_config(settings), audited_topics(settings))
        unreadable: list[str] = []
        try:
            stream = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
            count = 0
            try:
                for line in exports.journal_lines(reader, unreadable=unreadable):
                    stream.write(line + b"\n")
                    count += 1
            finally:
                if args.out:
                    stream.close()
        finally:
            reader.close()
        print(f"{count} events", file=sys.stderr)
        for where in unreadable:
            print(f"PROBLEM {where}: not a readable envelope (written as unreadable_message)", file=sys.stderr)
        return FOUND if unreadable else OK
    from services.audit.replay import replay_topics

    replay = replay_topics(settings, as_of=args.as_of, known_at=args.known_at, strict=args.strict)
    if args.export_command == "sisa":
        _emit(exports.sisa_annex_csv(replay, args.year, args.municipality), args.out)
        return _replay_findings(replay, sys.stderr)
    return _giving360(args, replay, settings)


def _giving360(args: argparse.Namespace, replay: Any, settings: Any) -> int:
    from decimal import Decimal

    from services.audit import exports
    from services.audit.giving360 import Giving360Invalid, giving360, validate_giving360

    export = giving360(replay, settings.giving360, year=args.year)
    for placeholder in export.placeholders:
        print(f"ido audit: WARNING 360Giving: {placeholder}; not for publication", file=sys.stderr)
    for note in export.notes:
        print(f"ido audit: 360Giving: {note}", file=sys.stderr)
    if args.publishable and not export.publishable:
        print("ido audit: --publishable: placeholders used, nothing written", file=sys.stderr)
        return FOUND
    if not export.document["grants"]:
        print("ido audit: no grant awarded at this point: a 360Giving file needs at least one", file=sys.stderr)
        return FOUND
    text = exports.dumps_exact(export.document, indent=2) + "\n"
    try:  # what is checked is the text written, read back with exact decimals
        validate_giving360(json.loads(text, parse_float=Decimal))
    except Giving360Invalid as invalid:
        for problem in invalid.problems:
            print(f"INVALID {problem}", file=sys.stderr)
        print(f"ido audit: the 360Giving document breaks its schema ({len(invalid.problems)} problem(s)), "
              "nothing written", file=sys.stderr)
        return FOUND
    _emit(text, args.out)
    return _replay_findings(replay, sys.stderr)
