"""The one naming authority: which user names are valid, and how IR names become Python names."""

from __future__ import annotations

import keyword
import re

# Words of the .snn language (grammar/snn.lark); they cannot name anything.
RESERVED_WORDS = (
    "network", "block", "input", "neuron", "surrogate", "norm", "recipe",
    "if", "else", "and", "or", "not", "in", "x", "true", "false",
)

IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# IR node names: identifiers joined by dots, parts may be numbers (`layer2.0.main.conv0`).
NODE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*\Z")


def identifier_problem(name: str) -> str | None:
    """Why `name` cannot name something in a .snn file, or None if it can."""
    if not IDENT_RE.match(name):
        return f"'{name}' is not a valid name: use letters, digits and '_', not starting with a digit"
    if keyword.iskeyword(name):
        return f"'{name}' is a Python keyword and cannot be a name"
    if name.startswith("__") and name.endswith("__"):
        return f"'{name}' is a dunder name and cannot be a name"
    if name in RESERVED_WORDS:
        return f"'{name}' is a reserved word"
    return None


def python_name(node_name: str) -> str:
    """A valid, readable Python identifier for an IR node name (`layer2.0.conv` -> `layer2_0_conv`).

    Node names are built only from validated identifiers and integers, so the
    result is an identifier; keywords (such as the `if` neuron) gain a `_`.
    """
    if not NODE_NAME_RE.match(node_name):
        raise ValueError(f"not an IR node name: {node_name!r}")
    name = node_name.replace(".", "_")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        name += "_"
    return name


def comment_text(text: str) -> str:
    """`text` made safe for a `#` comment in generated code: one line of printable ASCII."""
    return "".join(ch if (" " <= ch <= "~") else "?" for ch in str(text))
