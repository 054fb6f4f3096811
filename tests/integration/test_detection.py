"""The prompt-injection scorer through a live Envoy (issue 12): questions
about attacks pass, the kinds of attack the rules missed are blocked,
report mode forwards with the score.

The examples are the project's own (tests/data/README.md), none of them in
the scorer's training data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from client import request
from conftest import KEYS, base_plugin_config

JSON = ("Content-Type", "application/json")
BLOCKED = "Invalid input detected: potentially malicious pattern"
DATA = Path(__file__).resolve().parent.parent / "data"


def post(envoy, path, body: dict):
    return request(envoy.port, "POST", path, body=json.dumps(body).encode(),
                   headers=[("X-API-Key", KEYS["good"]), JSON], timeout=60)


def upstream_headers(resp) -> dict:
    return dict((n, v) for n, v in resp.json()["headers"])


# Questions the rules alone blocked, one or more per kind the issue names.
META_QUESTIONS = [
    # about jailbreaks and prompt injection
    "What is a jailbreak prompt and why do language models fall for them?",
    "How do red teams test chatbots for role-play jailbreaks?",
    # about SQL statements
    "What does the SQL statement TRUNCATE TABLE do, and how is it different from DELETE?",
    "What does the OR 1=1 trick in SQL injection examples actually do?",
    # about chat-template tokens
    "What is the <|endoftext|> token used for during training?",
    # about template placeholders
    "What does {{ .Values.image.tag }} mean in a Helm chart?",
    "How does Terraform interpolation like ${var.region} work?",
]


@pytest.mark.parametrize("text", META_QUESTIONS)
def test_questions_about_attacks_pass(envoy, text):
    resp = post(envoy, "/query", {"question": text})
    assert resp.status == 200, (resp.status, resp.body[:300])


def own_attacks(kind: str) -> list[str]:
    rows = [json.loads(l) for l in (DATA / "own_attacks.jsonl").read_text().splitlines() if l.strip()]
    return [r["text"] for r in rows if r["kind"] == kind]


# Each kind the rules missed, all 15 of the held-out file's examples: the
# share blocked is measured, not the examples picked (docs/detection.md has
# the numbers; a kind below 70% is a regression).
MISSED_KINDS = ["role_play", "goal_hijack", "other_language", "invisible_glue"]


@pytest.mark.parametrize("kind", MISSED_KINDS)
def test_attacks_the_rules_missed_are_blocked(envoy, kind):
    texts = own_attacks(kind)
    blocked = 0
    for text in texts:
        resp = post(envoy, "/query", {"question": text})
        assert resp.status in (200, 400), resp.status
        if resp.status == 400:
            assert resp.json() == {"detail": BLOCKED, "field": "question", "category": "prompt_injection"}
            blocked += 1
    assert blocked >= 0.7 * len(texts), (kind, blocked, len(texts))


def test_hard_benign_questions_pass(envoy):
    texts = [l for l in (DATA / "hard_benign.txt").read_text().splitlines() if l.strip()]
    refused = [t for t in texts if post(envoy, "/query", {"question": t}).status != 200]
    # Measured: 3 of 156 (docs/detection.md); the target is 1%.
    assert len(refused) <= 5, refused


def test_a_blocked_question_logs_its_score(envoy):
    text = own_attacks("role_play")[0]
    assert post(envoy, "/query", {"question": text}).status == 400
    events = [json.loads(l[l.index("{"):]) for l in envoy.log().splitlines()
              if '"validation_failed"' in l and '"prompt_injection"' in l and '"score"' in l]
    assert events, envoy.log()[-2000:]
    assert 0.5 <= events[-1]["score"] <= 1.0


def echo_routes(document_action: str = "report") -> dict:
    return {
        "injection_model": {"mode": "report"},
        "categories": {"prompt_injection": "report", "document_injection": document_action},
        "routes": [
            {"path": "/echo/query", "max_body_bytes": 65536,
             "fields": {"question": {"type": "string", "required": True, "max_chars": 2000,
                                     "screen": ["prompt_injection"]}}},
            {"path": "/echo/documents", "max_body_bytes": 3 << 20,
             "fields": {"content": {"type": "string", "required": True,
                                    "screen": ["document_injection"]}}},
        ],
    }


@pytest.fixture(scope="module")
def report_envoy(stacks):
    return stacks.envoy(base_plugin_config(body_inspection=echo_routes()), name="detection-report")


def test_report_mode_forwards_with_the_score(report_envoy):
    text = own_attacks("role_play")[1]
    resp = post(report_envoy, "/echo/query", {"question": text})
    assert resp.status == 200
    flag = upstream_headers(resp)["x-rag-guard-flags"]
    m = re.fullmatch(r"prompt_injection;score=(0\.\d{3}|1\.000)", flag)
    assert m, flag
    assert float(m.group(1)) >= 0.5
    # A plain question carries no flag.
    resp = post(report_envoy, "/echo/query", {"question": "What is our refund policy?"})
    assert "x-rag-guard-flags" not in upstream_headers(resp)
