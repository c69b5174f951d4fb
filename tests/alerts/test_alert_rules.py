"""The alert rules, checked and unit-tested by the real promtool (installed by `make prometheus`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "manifests" / "monitoring" / "invsync.rules.yaml"
UNIT_TESTS = Path(__file__).with_name("invsync.test.yaml")
RUNBOOKS = ROOT / "docs" / "alerts.md"
RUNBOOK_BASE = "https://github.com/invsync/invsync/blob/main/docs/alerts.md#"
REQUIRED = {
    "InvsyncDriftPersists",
    "InvsyncSyncStale",
    "InvsyncPushesFailing",
    "InvsyncSafetyHold",
    "InvsyncRuleConflict",
    "InvsyncOversellRisk",
    "InvsyncOperatorAbsent",
}


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: run `make prometheus`"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    done = promtool("test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_catch_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests compare rendered alerts exactly: a changed expectation must fail."""
    text = UNIT_TESTS.read_text().replace("../../manifests/", f"{ROOT}/manifests/")
    broken = tmp_path / "broken.test.yaml"
    broken.write_text(text.replace("(drifted listings: 2)", "(drifted listings: 3)", 1))
    done = promtool("test", "rules", str(broken))
    assert done.returncode != 0
    assert "alertname: InvsyncDriftPersists, time: 17m" in done.stdout + done.stderr


def test_every_required_alert_exists() -> None:
    assert {a["alert"] for a in alerts()} >= REQUIRED


def test_every_alert_is_tested_firing_and_silent() -> None:
    cases: dict[str, dict[str, int]] = {}
    for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            counts = cases.setdefault(case["alertname"], {"firing": 0, "silent": 0})
            counts["firing" if case["exp_alerts"] else "silent"] += 1
    for alert in alerts():
        got = cases.get(alert["alert"], {})
        assert got.get("firing") and got.get("silent"), f"{alert['alert']}: needs firing and silent cases"


def test_every_alert_has_summary_description_and_a_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.M)
    }
    for alert in alerts():
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        url = annotations["runbook_url"]
        assert url == RUNBOOK_BASE + alert["alert"].lower(), alert["alert"]
        assert url.removeprefix(RUNBOOK_BASE) in anchors, f"docs/alerts.md has no section {alert['alert']}"
