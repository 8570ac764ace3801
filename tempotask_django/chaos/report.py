"""What a scenario measured (figures) and promised (checks), and the run's JSON and text reports."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Check:
    """A figure with a required value ("lost must be 0")."""

    name: str
    value: Any
    expected: Any

    @property
    def ok(self) -> bool:
        return self.value == self.expected


@dataclass
class Result:
    """Figures (reported) and checks (must hold) of one scenario run."""

    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def figure(self, name: str, value: Any) -> Any:
        self.figures[name] = round(value, 3) if isinstance(value, float) else value
        return value

    def must_equal(self, name: str, value: Any, expected: Any) -> None:
        """Record ``value`` as a figure and require it to equal ``expected``."""
        self.figure(name, value)
        self.checks.append(Check(name, value, expected))

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def passed(self) -> bool:
        return all(check.ok for check in self.checks)


@dataclass
class ScenarioReport:
    name: str
    title: str
    params: dict[str, Any]
    seconds: float
    result: Result | None = None
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and self.result is not None and self.result.passed

    def as_dict(self) -> dict[str, Any]:
        result = self.result or Result()
        return {
            "name": self.name,
            "title": self.title,
            "params": self.params,
            "passed": self.passed,
            "seconds": round(self.seconds, 1),
            "figures": result.figures,
            "checks": [{**asdict(check), "ok": check.ok} for check in result.checks],
            "notes": result.notes,
            "error": self.error,
        }


def write_reports(out: Path, header: dict[str, Any], scenarios: list[ScenarioReport]) -> str:
    """Write ``report.json`` and ``summary.txt`` into ``out``; returns the summary text."""
    out.mkdir(parents=True, exist_ok=True)
    data = {**header, "passed": all(s.passed for s in scenarios), "scenarios": [s.as_dict() for s in scenarios]}
    (out / "report.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    text = summary(data)
    (out / "summary.txt").write_text(text)
    return text


def summary(data: dict[str, Any]) -> str:
    lines = [
        f"tempotask chaos suite: profile {data['profile']}, seed {data['seed']}, "
        f"Redis {data['redis_version']}, {data['seconds']:.0f} s, "
        + ("ALL CHECKS PASSED" if data["passed"] else "SOME CHECKS FAILED"),
        "",
    ]
    for scenario in data["scenarios"]:
        verdict = "pass" if scenario["passed"] else ("ERROR" if scenario["error"] else "FAIL")
        lines.append(f"[{verdict}] {scenario['name']}: {scenario['title']} ({scenario['seconds']:.0f} s)")
        checks = {check["name"]: check for check in scenario["checks"]}
        for name, value in scenario["figures"].items():
            check = checks.get(name)
            rule = ""
            if check:
                rule = f"  (must be {check['expected']})" + ("" if check["ok"] else "  <-- FAILED")
            lines.append(f"    {name:<36} {_show(value)}{rule}")
        lines.extend(f"    note: {note}" for note in scenario["notes"])
        if scenario["error"]:
            lines.append(f"    error: {scenario['error']}")
        lines.append("")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
