"""The cost of ``import sessionkit`` in a fresh interpreter, against its light dependencies.

Each measurement starts a new interpreter that times one import statement with
``time.perf_counter`` (interpreter start-up excluded) and reports which heavy modules got
imported. ``import sessionkit`` and ``import attrs, typing_extensions`` alternate, run after
run, so both see the same machine state. Two further rows are for information: resolving
``sessionkit.open_session`` (which loads the core: registry, Session, models, waiting) and
running ``python -m sessionkit --help`` end to end against ``python -c pass``.

Target: ``import sessionkit`` at most 1.3 times the dependencies' import, with neither boto3 nor
tenacity imported until first used.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from _common import ROOT, arguments, emit, table

PROBE = """
import json, sys, time
start = time.perf_counter()
{statement}
elapsed = time.perf_counter() - start
print(json.dumps({{
    "ms": elapsed * 1000,
    "boto3": "boto3" in sys.modules,
    "botocore": "botocore" in sys.modules,
    "tenacity": "tenacity" in sys.modules,
}}))
"""

STATEMENTS = {
    "import sessionkit": "import sessionkit",
    "import attrs, typing_extensions": "import attrs, typing_extensions",
    "sessionkit.open_session resolved": "import sessionkit; sessionkit.open_session",
}


def probe(statement: str) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, "-c", PROBE.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, cwd=ROOT)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    args = arguments(__doc__ or "", runs=(int, 21, "fresh interpreters per statement"))
    runs = 3 if args.quick else args.runs
    samples: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    flags: dict[str, dict[str, object]] = {}
    for _ in range(runs):
        for name, statement in STATEMENTS.items():
            result = probe(statement)
            samples[name].append(float(result["ms"]))  # type: ignore[arg-type]
            flags[name] = result
    help_ms, bare_ms = [], []
    for _ in range(max(3, runs // 3)):
        help_ms.append(wall([sys.executable, "-m", "sessionkit", "--help"]))
        bare_ms.append(wall([sys.executable, "-c", "pass"]))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    rows = [
        [
            name,
            medians[name],
            min(samples[name]),
            flags[name]["boto3"],
            flags[name]["tenacity"],
        ]
        for name in STATEMENTS
    ]
    rows.append(
        ["python -m sessionkit --help (wall)", statistics.median(help_ms), min(help_ms), "", ""]
    )
    rows.append(["python -c pass (wall)", statistics.median(bare_ms), min(bare_ms), "", ""])
    print(f"fresh interpreters, {runs} runs each, medians in ms\n")
    print(table(["what", "median ms", "min ms", "boto3", "tenacity"], rows))
    ours = medians["import sessionkit"]
    deps = medians["import attrs, typing_extensions"]
    boto3_imported = bool(flags["import sessionkit"]["boto3"])
    tenacity_imported = bool(flags["import sessionkit"]["tenacity"])
    met = ours <= 1.3 * deps and not boto3_imported and not tenacity_imported
    print(f"\nratio {ours / deps:.2f} (target <= 1.3, neither boto3 nor tenacity imported): {met}")
    emit(
        {
            "import_ms": round(ours, 3),
            "deps_import_ms": round(deps, 3),
            "boto3_imported": boto3_imported,
            "tenacity_imported": tenacity_imported,
            "core_import_ms": round(medians["sessionkit.open_session resolved"], 3),
            "core_boto3_imported": bool(flags["sessionkit.open_session resolved"]["boto3"]),
            "core_tenacity_imported": bool(flags["sessionkit.open_session resolved"]["tenacity"]),
            "cli_help_ms": round(statistics.median(help_ms), 1),
            "python_startup_ms": round(statistics.median(bare_ms), 1),
            "runs": runs,
            "targets_met": met,
        }
    )


if __name__ == "__main__":
    main()
