"""Credentials recognised by their shape alone: the published formats of well-known tokens, private keys in PEM
blocks and passwords in URLs. Each shape asks for its prefix, its characters and a minimum length (and, where a
prefix could begin an ordinary name, random-looking characters), so `sk-learn` or `hf_resnet` stay as they are
(docs/reliability.md lists the shapes)."""

import re
from collections.abc import Callable

REDACTED = "<redacted>"
_START = r"(?<![A-Za-z0-9])"  # a token starts a word: `my_ghp_...` is not cut in two
_END = r"(?![A-Za-z0-9])"


def _random_run(length: int, classes: tuple[str, ...]) -> Callable[[str], bool]:
    """True when the token holds `length` or more letters and digits in a row with a character of every class
    (`A-Z`, `a-z`, `0-9`): what a random token has and a name made of words does not."""
    run = re.compile(rf"[A-Za-z0-9]{{{length},}}")

    def check(token: str) -> bool:
        return any(all(re.search(f"[{c}]", m.group()) for c in classes) for m in run.finditer(token))

    return check


def _always(token: str) -> bool:
    return True


# name, pattern, and a check of the matched text (a prefix that ordinary names can start with needs random characters)
SHAPES: list[tuple[str, re.Pattern[str], Callable[[str], bool]]] = [
    ("GitHub token", re.compile(rf"{_START}gh[pousr]_[A-Za-z0-9]{{36,251}}{_END}"), _always),
    ("GitHub fine-grained token", re.compile(rf"{_START}github_pat_[A-Za-z0-9_]{{50,244}}{_END}"), _always),
    ("GitLab token", re.compile(rf"{_START}glpat-[A-Za-z0-9_-]{{20,}}"), _always),
    ("Hugging Face token", re.compile(rf"{_START}hf_[A-Za-z0-9]{{30,}}{_END}"), _random_run(30, ("A-Z", "a-z"))),
    # OpenAI (sk-..., sk-proj-..., sk-svcacct-...) and Anthropic (sk-ant-api03-...) keys
    ("OpenAI-style key", re.compile(rf"{_START}sk-[A-Za-z0-9_-]{{20,}}"), _random_run(20, ("A-Z", "a-z", "0-9"))),
    ("Stripe key", re.compile(rf"{_START}[rs]k_(?:live|test)_[A-Za-z0-9]{{16,}}{_END}"), _always),
    ("Slack token", re.compile(rf"{_START}xox[abprs]-[A-Za-z0-9-]{{10,}}"), lambda t: bool(re.search(r"\d", t))),
    ("AWS access key id", re.compile(rf"{_START}(?:AKIA|ASIA)[A-Z0-9]{{16}}{_END}"), _always),
    ("Google API key", re.compile(rf"{_START}AIza[A-Za-z0-9_-]{{35}}"), _always),
    ("JSON web token", re.compile(rf"{_START}eyJ[A-Za-z0-9_-]{{8,}}\.eyJ[A-Za-z0-9_-]{{8,}}\.[A-Za-z0-9_-]*"), _always),
]
# A PEM private key (RSA, EC, OPENSSH, ENCRYPTED, ...): its body, to the END line or the end of the text. Line by line
# (a diff's `+` prefixes, YAML's indentation and JSON's `\n` escapes stay), every run of base64 is redacted.
PEM = re.compile(
    r"(?P<begin>-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----)(?P<body>.*?)"
    r"(?P<end>-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
PEM_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/=]{16,}")
# `scheme://user:password@host`: the password (the user name stays, to tell which account was used)
URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<secret>[^/\s@]+)(?=@)")


def _base64_run(match: re.Match[str]) -> str:
    """A run of a key's base64, redacted; a `+` that begins its line is kept (a diff's added line)."""
    begins_line = match.start() == 0 or match.string[match.start() - 1] == "\n"
    return ("+" if begins_line and match.group().startswith("+") else "") + REDACTED


def token_shapes(text: str) -> list[tuple[str, str]]:
    """`(shape name, token)` for every well-known token in `text`."""
    return [(name, m.group()) for name, pattern, check in SHAPES for m in pattern.finditer(text) if check(m.group())]


def is_token(value: str) -> bool:
    """True when the whole of `value` is a token of a well-known shape."""
    return any(pattern.fullmatch(value) and check(value) for _, pattern, check in SHAPES)


def redact_shapes(text: str) -> str:
    """`text` with every well-known token, the body of every PEM private key and every URL password redacted."""
    for _, pattern, check in SHAPES:
        text = pattern.sub(lambda m, check=check: REDACTED if check(m.group()) else m.group(), text)
    text = PEM.sub(lambda m: m.group("begin") + PEM_BASE64.sub(_base64_run, m.group("body")) + m.group("end"), text)
    return URL_CREDENTIALS.sub(lambda m: m.group("head") + REDACTED, text)
