"""Planted secrets: fake credentials of many provider kinds, each placed in every shape it can take in a log.

Values are generated from a seeded RNG at run time (no credential-shaped literal sits in this file, so no scanner
flags the repository). Each value has a random `body` (what must never reach an output: any 8-character window of
it counts as a leak) and a fixed prefix that may survive (`sk-ant-api03-` alone identifies nothing).
"""

from __future__ import annotations

import base64
import json
import random
import string
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
URLSAFE = ALNUM + "_-"
BASE64 = ALNUM + "+/"
LEAK_WINDOW = 8


@dataclass(frozen=True)
class Planted:
    kind: str  # provider kind, e.g. "stripe"
    value: str  # the whole credential as it would appear
    body: str  # the random part (a leak is any LEAK_WINDOW-window of it in an output)
    name: str  # the variable name a user would give it (OPENAI_API_KEY, password, ...)
    prefixed: bool  # True: recognisable on its own (a provider prefix); False: only by the key in front of it


def _pick(rng: random.Random, alphabet: str, count: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(count))


def _mixed(rng: random.Random, alphabet: str, count: int) -> str:
    """Random text with at least one lower, upper and digit where the alphabet has them (real keys do)."""
    while True:
        text = _pick(rng, alphabet, count)
        classes = [c for c in (string.ascii_lowercase, string.ascii_uppercase, string.digits) if set(c) & set(alphabet)]
        if all(set(text) & set(c) for c in classes):
            return text


# kind -> (variable name, builder(rng) -> (prefix-and-body value, body)). Shapes follow the providers' public
# formats as the gitleaks/kingfisher rule sets describe them (prefix, alphabet, length).
def _prefixed(prefix: str, alphabet: str, count: int, suffix: str = "") -> Callable[[random.Random], tuple[str, str]]:
    def build(rng: random.Random) -> tuple[str, str]:
        body = _mixed(rng, alphabet, count)
        return prefix + body + suffix, body
    return build


def _aws_secret(rng: random.Random) -> tuple[str, str]:
    body = _mixed(rng, BASE64, 40)
    return body, body


def _openai(rng: random.Random) -> tuple[str, str]:
    body = _mixed(rng, URLSAFE, 74) + "T3BlbkFJ" + _mixed(rng, URLSAFE, 74)
    return "sk-proj-" + body, body


def _jwt(rng: random.Random) -> tuple[str, str]:
    payload = base64.urlsafe_b64encode(json.dumps({"sub": _pick(rng, ALNUM, 12), "iat": 1700000000}).encode())
    body = payload.decode().rstrip("=") + "." + _mixed(rng, URLSAFE, 43)
    return "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + body, body


def _slack_bot(rng: random.Random) -> tuple[str, str]:
    body = f"{_pick(rng, string.digits, 12)}-{_pick(rng, string.digits, 13)}-{_mixed(rng, ALNUM, 24)}"
    return "xoxb-" + body, body


def _slack_webhook(rng: random.Random) -> tuple[str, str]:
    body = f"T{_pick(rng, UPPER_ALNUM, 10)}/B{_pick(rng, UPPER_ALNUM, 10)}/{_mixed(rng, ALNUM, 24)}"
    return "https://hooks.slack.com/services/" + body, body


def _discord_webhook(rng: random.Random) -> tuple[str, str]:
    body = f"{_pick(rng, string.digits, 18)}/{_mixed(rng, URLSAFE, 68)}"
    return "https://discord.com/api/webhooks/" + body, body


def _sendgrid(rng: random.Random) -> tuple[str, str]:
    body = f"{_mixed(rng, URLSAFE, 22)}.{_mixed(rng, URLSAFE, 43)}"
    return "SG." + body, body


def _telegram(rng: random.Random) -> tuple[str, str]:
    body = _mixed(rng, URLSAFE, 33)
    return f"{rng.randrange(10**8, 10**9)}:AA{body}", body


def _grafana_sa(rng: random.Random) -> tuple[str, str]:
    body = f"{_mixed(rng, ALNUM, 32)}_{_pick(rng, HEX, 8)}"
    return "glsa_" + body, body


def _postman(rng: random.Random) -> tuple[str, str]:
    body = f"{_pick(rng, HEX, 24)}-{_pick(rng, HEX, 34)}"
    return "PMAK-" + body, body


def _langsmith(rng: random.Random) -> tuple[str, str]:
    body = f"{_pick(rng, HEX, 32)}_{_pick(rng, HEX, 10)}"
    return "lsv2_pt_" + body, body


def _azure_storage(rng: random.Random) -> tuple[str, str]:
    body = _mixed(rng, BASE64, 86) + "=="
    return f"DefaultEndpointsProtocol=https;AccountName=acme{_pick(rng, HEX, 6)};AccountKey={body}", body


def _terraform(rng: random.Random) -> tuple[str, str]:
    body = f"{_pick(rng, HEX, 14)}.atlasv1.{_mixed(rng, ALNUM, 67)}"
    return body, body


def _private_key(rng: random.Random) -> tuple[str, str]:
    lines = [_mixed(rng, BASE64, 64) for _ in range(4)]
    body = "\n".join(lines)
    return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----", body


def _notion(rng: random.Random) -> tuple[str, str]:
    body = _pick(rng, string.digits, 11) + _mixed(rng, ALNUM, 35)
    return "ntn_" + body, body


def _age(rng: random.Random) -> tuple[str, str]:
    body = _pick(rng, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)
    return "AGE-SECRET-KEY-1" + body, body


def _generic(alphabet: str, count: int) -> Callable[[random.Random], tuple[str, str]]:
    def build(rng: random.Random) -> tuple[str, str]:
        body = _mixed(rng, alphabet, count)
        return body, body
    return build


def _password(rng: random.Random) -> tuple[str, str]:
    body = _mixed(rng, ALNUM, 10) + "/" + _mixed(rng, ALNUM, 6) + "!" + _mixed(rng, ALNUM, 4)
    return body, body


KINDS: dict[str, tuple[str, Callable[[random.Random], tuple[str, str]], bool]] = {
    "aws_access_key": ("AWS_ACCESS_KEY_ID", _prefixed("AKIA", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16), True),
    "aws_secret_key": ("aws_secret_access_key", _aws_secret, False),
    "anthropic": ("ANTHROPIC_API_KEY", _prefixed("sk-ant-api03-", URLSAFE, 93, "AA"), True),
    "anthropic_admin": ("ANTHROPIC_ADMIN_KEY", _prefixed("sk-ant-admin01-", URLSAFE, 93, "AA"), True),
    "openai": ("OPENAI_API_KEY", _openai, True),
    "openrouter": ("OPENROUTER_API_KEY", _prefixed("sk-or-v1-", HEX, 64), True),
    "github_pat": ("GITHUB_TOKEN", _prefixed("ghp_", ALNUM, 36), True),
    "github_oauth": ("GH_OAUTH", _prefixed("gho_", ALNUM, 36), True),
    "github_fine_grained": ("GH_TOKEN", _prefixed("github_pat_", ALNUM + "_", 82), True),
    "gitlab_pat": ("GITLAB_TOKEN", _prefixed("glpat-", URLSAFE, 20), True),
    "stripe_live": ("STRIPE_SECRET_KEY", _prefixed("sk_live_", ALNUM, 99), True),
    "stripe_restricted": ("STRIPE_RESTRICTED", _prefixed("rk_live_", ALNUM, 99), True),
    "npm": ("NPM_TOKEN", _prefixed("npm_", ALNUM, 36), True),
    "pypi": ("PYPI_TOKEN", _prefixed("pypi-AgEIcHlwaS5vcmc", URLSAFE, 70), True),
    "huggingface": ("HF_TOKEN", _prefixed("hf_", string.ascii_letters, 34), True),
    "slack_bot": ("SLACK_BOT_TOKEN", _slack_bot, True),
    "slack_webhook": ("SLACK_WEBHOOK_URL", _slack_webhook, True),
    "discord_webhook": ("DISCORD_WEBHOOK", _discord_webhook, True),
    "google_api": ("GOOGLE_API_KEY", _prefixed("AIza", URLSAFE, 35), True),
    "jwt": ("ID_TOKEN", _jwt, True),
    "sendgrid": ("SENDGRID_API_KEY", _sendgrid, True),
    "twilio": ("TWILIO_API_KEY", _prefixed("SK", HEX, 32), True),
    "mailgun": ("MAILGUN_API_KEY", _prefixed("key-", HEX, 32), True),
    "digitalocean": ("DIGITALOCEAN_TOKEN", _prefixed("dop_v1_", HEX, 64), True),
    "shopify": ("SHOPIFY_ACCESS_TOKEN", _prefixed("shpat_", HEX, 32), True),
    "doppler": ("DOPPLER_TOKEN", _prefixed("dp.pt.", ALNUM, 43), True),
    "databricks": ("DATABRICKS_TOKEN", _prefixed("dapi", HEX, 32), True),
    "telegram": ("TELEGRAM_BOT_TOKEN", _telegram, True),
    "groq": ("GROQ_API_KEY", _prefixed("gsk_", ALNUM, 52), True),
    "xai": ("XAI_API_KEY", _prefixed("xai-", ALNUM, 80), True),
    "replicate": ("REPLICATE_API_TOKEN", _prefixed("r8_", ALNUM, 37), True),
    "linear": ("LINEAR_API_KEY", _prefixed("lin_api_", ALNUM, 40), True),
    "notion": ("NOTION_TOKEN", _notion, True),
    "figma": ("FIGMA_TOKEN", _prefixed("figd_", URLSAFE, 40), True),
    "grafana": ("GRAFANA_TOKEN", _grafana_sa, True),
    "pulumi": ("PULUMI_ACCESS_TOKEN", _prefixed("pul-", HEX, 40), True),
    "square": ("SQUARE_ACCESS_TOKEN", _prefixed("sq0atp-", URLSAFE, 22), True),
    "new_relic": ("NEW_RELIC_API_KEY", _prefixed("NRAK-", UPPER_ALNUM, 27), True),
    "age": ("SOPS_AGE_KEY", _age, True),
    "postman": ("POSTMAN_API_KEY", _postman, True),
    "langsmith": ("LANGSMITH_API_KEY", _langsmith, True),
    "vault": ("VAULT_TOKEN", _prefixed("hvs.", URLSAFE, 90), True),
    "azure_storage": ("AZURE_STORAGE_CONNECTION_STRING", _azure_storage, True),
    "terraform": ("TFE_TOKEN", _terraform, True),
    "private_key": ("PRIVATE_KEY", _private_key, True),
    "perplexity": ("PPLX_API_KEY", _prefixed("pplx-", ALNUM, 48), True),
    "flyio": ("FLY_API_TOKEN", _prefixed("fo1_", URLSAFE, 43), True),
    # no provider prefix: recognisable only from the name in front of them
    "password": ("password", _password, False),
    "db_password": ("DB_PASSWORD", _generic(ALNUM, 18), False),
    "client_secret": ("client_secret", _generic(URLSAFE, 32), False),
    "api_key_generic": ("api_key", _generic(ALNUM, 32), False),
    "mistral": ("MISTRAL_API_KEY", _generic(ALNUM, 32), False),
}


def make_planted(seed: int = 0) -> list[Planted]:
    """One value of every kind, deterministic for `seed`."""
    rng = random.Random(seed)
    planted = []
    for kind, (name, build, prefixed) in KINDS.items():
        value, body = build(rng)
        planted.append(Planted(kind, value, body, name, prefixed))
    return planted


def _env_blob(p: Planted) -> str:
    return base64.b64encode(f"# .env\nDEBUG=1\n{p.name}={p.value}\nPORT=8080\n".encode()).decode()


# shape name -> (applies to unprefixed values too?, text builder). Each builds the text a log would hold.
SHAPES: dict[str, tuple[bool, Callable[[Planted], str]]] = {
    "prose": (False, lambda p: f"I used {p.value} for the call and it worked."),
    "env_upper": (True, lambda p: f"export {p.name.upper()}={p.value}"),
    "env_lower_spaced": (True, lambda p: f"{p.name.lower()} = {p.value}"),
    "quoted_colon": (True, lambda p: f'{p.name.title()}: "{p.value}"'),
    "single_quoted": (True, lambda p: f"{p.name.lower()}='{p.value}'"),
    "yaml": (True, lambda p: f"config:\n  {p.name.lower()}: {p.value}\n  region: us-east-1"),
    "json": (True, lambda p: json.dumps({p.name.lower(): p.value, "timeout": 30})),
    "header": (True, lambda p: f"curl -H 'x-api-key: {p.value}' https://api.example.com/v1/items"),
    "bearer": (True, lambda p: f"curl -H \"Authorization: Bearer {p.value}\" https://api.example.com"),
    "cli_flag": (True, lambda p: f"deploy --token {p.value} --region eu"),
    "cli_flag_eq": (True, lambda p: f"tool login --api-key={p.value}"),
    "aws_configure": (True, lambda p: f"aws configure set {p.name.lower()} {p.value}"),
    "url_query": (True, lambda p: f"GET https://api.example.com/v2/search?q=cats&api_key={p.value}&page=2"),
    "url_userinfo": (True, lambda p: f"git clone https://deploy:{p.value}@git.example.com/team/repo.git"),
    "redis_url": (True, lambda p: f"REDIS_URL=redis://:{p.value}@cache.internal:6379/0"),
    "db_url": (True, lambda p: f"connect postgresql://app:{p.value}@db.internal:5432/prod"),
    "json_escaped_newline": (False, lambda p: "{\"content\": \"line one\\n" + p.value + "\\nline two\"}"),
    "json_escaped_tab": (False, lambda p: "{\"out\": \"key:\\t" + p.value + "\"}"),
    "json_escaped_assign": (True, lambda p: "{\"cmd\": \"cat .env\", \"out\": \"A=1\\n" + p.name + "=" + p.value + "\\n\"}"),
    "url_encoded_eq": (True, lambda p: "https://example.com/cb?state=x&" + p.name.lower() + "%3D"
                       + urllib.parse.quote(p.value, safe="") + "%26next"),
    "url_encoded_quote": (False, lambda p: "body=%7B%22key%22%3A%22" + urllib.parse.quote(p.value, safe="") + "%22%7D"),
    "file_name": (False, lambda p: f"saved to /tmp/backup_{p.value.splitlines()[0]}.json"),
    "split_lines": (False, lambda p: f"{p.value[:len(p.value) // 2]}\n{p.value[len(p.value) // 2:]}\n"),
    "split_backslash": (False, lambda p: f"echo {p.value[:len(p.value) // 2]}\\\n{p.value[len(p.value) // 2:]}"),
    "base64_env": (True, lambda p: f"echo {_env_blob(p)} | base64 -d > .env"),
}


@dataclass(frozen=True)
class Case:
    planted: Planted
    shape: str
    text: str


def cases(seed: int = 0) -> list[Case]:
    """Every kind in every shape that applies to it."""
    out = []
    for planted in make_planted(seed):
        for shape, (any_value, build) in SHAPES.items():
            if planted.prefixed or any_value:
                if shape == "file_name" and planted.kind == "private_key":
                    continue
                out.append(Case(planted, shape, build(planted)))
    return out


def windows(planted: Planted, shape: str = "") -> set[str]:
    """Every LEAK_WINDOW-character piece of `planted`'s body (as written and URL-encoded) and, for the base64
    shape, of its .env blob: finding one in an output is a leak."""
    bodies = [planted.body, urllib.parse.quote(planted.body, safe="")]
    if shape == "base64_env":
        bodies.append(_env_blob(planted))
    return {line[start:start + LEAK_WINDOW] for body in bodies for line in body.splitlines()
            for start in range(0, len(line) - LEAK_WINDOW + 1)}


def leaks(planted: Planted, text: str, shape: str = "") -> list[str]:
    """The windows of `planted`'s body (and of its base64 .env blob) found in `text`."""
    return sorted(window for window in windows(planted, shape) if window in text)


def leaked_cases(cases: list[Case], text: str) -> list[Case]:
    """The cases with a window in `text`, all of them found in one Aho-Corasick pass (polars) over `text`."""
    import polars as pl

    owner: dict[str, list[int]] = {}
    for index, case in enumerate(cases):
        for window in windows(case.planted, case.shape):
            owner.setdefault(window, []).append(index)
    hits = pl.Series([text]).str.extract_many(sorted(owner), overlapping=True).to_list()[0] or []
    return [cases[index] for index in sorted({i for window in hits for i in owner[window]})]


# Must survive redaction verbatim: ids, hashes, digests, prose about keys, placeholders of env variables.
SURVIVORS = (
    "123e4567-e89b-12d3-a456-426614174000",
    "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "sha256:" + "3f" * 32,
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sha512-" + "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==",
    "The token count and the primary key matter",
    "git@github.com:org/repo.git",
    "export PATH=$HOME/bin:$PATH",
    "https://example.com/home/index.html",
    "api_key = os.environ['OPENAI_API_KEY']",
    "password = getpass.getpass()",
    'token: "${GITHUB_TOKEN}"',
    "Authorization: Bearer <token>",
    "docker pull python@sha256:" + "ab" * 32,
    "commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904",
)


def personal_cases(seed: int = 0) -> list[tuple[str, str, str]]:
    """(kind, text, the personal string that must not survive): home-folder user names and e-mail addresses in
    the places logs put them."""
    rng = random.Random(seed + 1)
    user = {name: name + _pick(rng, string.ascii_lowercase, 4) for name in
            ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "kate", "leo",
             "mallory", "nia", "oscar", "peggy")}
    return [
        ("home_path", f"cd /mnt/c/Users/{user['alice']}/proj && ls", user["alice"]),
        ("home_path", f"ostree: /var/home/{user['bob']}/src", user["bob"]),
        ("home_path", f"cp notes.txt ~{user['dave']}/backup/", user["dave"]),
        ("home_path", f"cwd=/home/{user['erin']}/work", user["erin"]),
        ("home_path", f"open /Users/{user['frank']}/Desktop/a.png", user["frank"]),
        ("home_path", f"C:\\Users\\{user['grace']}\\src\\app.py", user["grace"]),
        ("home_path", "{\"cwd\": \"C:\\\\Users\\\\" + user["heidi"] + "\\\\code\"}", user["heidi"]),
        ("home_folder_name", f"~/.claude/projects/-Users-{user['ivan']}-proj/s.jsonl", user["ivan"]),
        ("home_folder_name", f"projects/-home-{user['judy']}-x/", user["judy"]),
        ("home_folder_name", f"projects/-mnt-c-Users-{user['kate']}-x/", user["kate"]),
        ("home_path", f"file:///Users/{user['leo']}/index.html", user["leo"]),
        ("email", f"mail {user['mallory']}.smith@example.org now", user["mallory"]),
        ("email", "{\"text\": \"from:\\n" + user["nia"] + "@corp.example.com\"}", user["nia"]),
        ("home_path", f"path=%2Fhome%2F{user['oscar']}%2Fdata", user["oscar"]),
        ("home_path", f"/Volumes/Macintosh HD/Users/{user['peggy']}/x", user["peggy"]),
    ]
