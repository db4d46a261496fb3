"""The per-element math of the fused LIF kernels, written once and rendered for every target.

The Triton kernels (backends/triton) and the generated CPU kernel (backends/cpu) run the
same loops: for a block of neurons, the forward walks t = 0..T-1 and the backward
t = T-1..0, doing the per-element work below at each step. That work is written here in
a small expression language (Python syntax) from docs/methods.md §1-§3 and §9, and
`to_triton` / `to_c` render it; the templates hold only loops, loads and stores.

The language: assignments `name = expr  # comment`, with + - * /, comparisons, numbers,
names, and the functions abs, exp, maximum, where(cond, a, b) and fma(a, b, c). fma marks
where the PyTorch CPU path computes a fused multiply-add (`torch.add(x, v, alpha=decay)`
is one, on every CPU with FMA): the C kernel keeps it fused and everything else unfused,
so its spikes equal the PyTorch path's bit for bit; Triton writes `a * b + c` and leaves
contraction to its compiler, as before.

Names: x (the input current, or the BN input), v (membrane after reset), h (before reset),
spike, z = h - vth, sg (the surrogate), keep (the MSG mask), gs = dL/ds, gv = dL/dv,
gh = dL/dh, gx = dL/d(input); the runtime scalars decay, input_scale, vth, keep_scale;
the surrogate parameters under their catalog names; bn_scale, bn_shift per element.
"""

from __future__ import annotations

import ast

# docs/methods.md §2, z = h - vth. dspike's 1 - tanh(b z)^2 is written as 4 e / (1 + e)^2 with
# e = exp(-2 b |z|), which never overflows.
SURROGATES: dict[str, tuple[str, ...]] = {
    "triangle": (
        "sg = beta * maximum(1.0 - beta * abs(z), 0.0)",
    ),
    "rectangle": (
        "sg = where(abs(z) < 0.5 / beta, beta, 0.0)",
    ),
    "arctan": (
        "w = 3.141592653589793 * beta * z",
        "sg = beta / (1.0 + w * w)",
    ),
    "dspike": (
        "e = exp(-2.0 * b * abs(z))",
        "e_region = exp(-2.0 * b * region)",
        "tanh_region = (1.0 - e_region) / (1.0 + e_region)",
        "sg = b * (4.0 * e / ((1.0 + e) * (1.0 + e))) / (2.0 * tanh_region)",
        "sg = where(abs(z) <= region, sg, 0.0)  # closed support, as the SML code",
    ),
    "sigmoid": (
        "sig = 1.0 / (1.0 + exp(-alpha * z))",
        "sg = alpha * sig * (1.0 - sig)",
    ),
}


def charge(decay_input: bool, fused_bn: bool) -> tuple[str, ...]:
    """x (as loaded) and v -> h, docs/methods.md §1 (and the folded BN of §9)."""
    lines = ("x = x * bn_scale", "x = x + bn_shift  # y = x * bn_scale[c] + bn_shift[c]") if fused_bn else ()
    if decay_input:
        return lines + ("h = input_scale * x", "h = fma(decay, v, h)  # = v + (x - v)/tau with decay = 1 - 1/tau")
    return lines + ("h = fma(decay, v, x)",)


FIRE = ("spike = h >= vth  # docs/methods.md §1: fire on h >= vth",)
SURROGATE_INPUT = ("z = h - vth",)


def reset(kind: str) -> tuple[str, ...]:
    if kind == "hard":
        return ("v = where(spike, 0.0, h)  # hard reset: v = h * (1 - s)",)
    return ("v = where(spike, h - vth, h)  # soft reset: v = h - vth * s",)


def apply_mask(rescale: bool) -> tuple[str, ...]:
    if rescale:
        return ("sg = where(keep, sg * keep_scale, 0.0)",)
    return ("sg = where(keep, sg, 0.0)",)


def gradient(kind: str, detach_reset: bool, decay_input: bool) -> tuple[str, ...]:
    """h, gs, sg (masked), gv -> gx and the new gv: one reverse step, docs/methods.md §1-§3."""
    lines = ["spike = h >= vth"]
    if kind == "hard":
        lines.append("gh = sg * gs + where(spike, 0.0, gv)  # dv/dh = 1 - s" if detach_reset else
                     "gh = sg * (gs - gv * h) + where(spike, 0.0, gv)  # dv/dh = (1 - s) - h * g")
    else:
        lines.append("gh = sg * gs + gv  # dv/dh = 1" if detach_reset else
                     "gh = sg * (gs - vth * gv) + gv  # dv/dh = 1 - vth * g")
    lines.append("gx = input_scale * gh" if decay_input else "gx = gh")
    lines.append("gv = decay * gh")
    return tuple(lines)


# --- PLIF: a learned decay (snnc/runtime/plif.py; Fang et al., ICCV 2021) ---------------------------
# k = sigmoid(w) per element (its layer's or its channel's) and decay = 1 - k. The lines follow the
# PyTorch path's order of operations, with no fma (its torch ops round every step), so the C kernel's
# float32 spikes equal that path's. The decay gradient needs v[t-1] = v_prev, from the saved
# h[t-1] = h_prev, and with decay_input the input x[t]; gk accumulates dL/dk over the steps.


def plif_charge(decay_input: bool) -> tuple[str, ...]:
    """x, v and k -> h."""
    if decay_input:
        return ("h = v + (x - v) * k  # h = v + (x - v) k: the paper's eq. 3 with 1/tau = k",)
    return ("h = v - v * k + x  # h = (1 - k) v + x",)


def plif_previous(kind: str) -> tuple[str, ...]:
    """h_prev = h[t-1] -> v_prev = v[t-1]; h_prev = 0 before the first step gives v_prev = 0 (vth > 0)."""
    if kind == "hard":
        return ("v_prev = where(h_prev >= vth, 0.0, h_prev)  # v[t-1] = h[t-1] * (1 - s[t-1])",)
    return ("v_prev = where(h_prev >= vth, h_prev - vth, h_prev)  # v[t-1] = h[t-1] - vth * s[t-1]",)


def plif_gradient(kind: str, detach_reset: bool, decay_input: bool) -> tuple[str, ...]:
    """h, gs, sg (masked), gv, k, v_prev (and x) -> gx, the new gv, and gk += dL/dk of this step."""
    # spike and gh are LIF's (dh/dk does not enter them): every line of `gradient` but its gx and gv.
    lines = [line for line in gradient(kind, detach_reset, decay_input)
             if _split(line)[0].targets[0].id not in ("gx", "gv")]
    if decay_input:
        lines += ["gx = gh * k  # dh/dx = k",
                  "gk = gk + gh * (x - v_prev)  # dh/dk = x - v[t-1]"]
    else:
        lines += ["gx = gh",
                  "gk = gk - gh * v_prev  # dh/dk = -v[t-1]"]
    lines.append("gv = gh * (1.0 - k)  # dh[t]/dv[t-1] = 1 - k")
    return tuple(lines)


# --- rendering ---------------------------------------------------------------------------------

_FUNCTIONS = {"abs": 1, "exp": 1, "maximum": 2, "where": 3, "fma": 3}


def _split(line: str) -> tuple[ast.Assign, str]:
    code, _, comment = line.partition("#")
    tree = ast.parse(code.strip(), mode="exec")
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assign) or len(tree.body[0].targets) != 1 \
            or not isinstance(tree.body[0].targets[0], ast.Name):
        raise ValueError(f"not a single assignment: {line!r}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS
                                           or len(node.args) != _FUNCTIONS[node.func.id]):
            raise ValueError(f"unknown function in {line!r}")
    return tree.body[0], comment.strip()


class _Triton(ast.NodeTransformer):
    def visit_Call(self, node):
        self.generic_visit(node)
        name = node.func.id
        if name == "fma":
            a, b, c = node.args
            return ast.BinOp(ast.BinOp(a, ast.Mult(), b), ast.Add(), c)
        return ast.Call(ast.Attribute(ast.Name("tl", ast.Load()), name, ast.Load()), node.args, [])


def to_triton(lines) -> tuple[str, ...]:
    """Triton (Python) statements: functions become tl.*, fma(a, b, c) becomes a * b + c."""
    out = []
    for line in lines:
        assign, comment = _split(line)
        code = ast.unparse(ast.fix_missing_locations(_Triton().visit(assign)))
        out.append(f"{code}  # {comment}" if comment else code)
    return tuple(out)


_C_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
          ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_BOOL_NAMES = {"spike", "keep"}


def _c_expr(node, real: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        text = repr(float(node.value))
        return text + ("f" if real == "float" else "")
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return f"(-{_c_expr(node.operand, real)})"
    if isinstance(node, ast.BinOp) and type(node.op) in _C_OPS:
        return f"({_c_expr(node.left, real)} {_C_OPS[type(node.op)]} {_c_expr(node.right, real)})"
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _C_OPS:
        return f"({_c_expr(node.left, real)} {_C_OPS[type(node.ops[0])]} {_c_expr(node.comparators[0], real)})"
    if isinstance(node, ast.Call):
        args = [_c_expr(a, real) for a in node.args]
        name = node.func.id
        if name == "where":
            return f"({args[0]} ? {args[1]} : {args[2]})"
        if name == "maximum":
            return f"({args[0]} > {args[1]} ? {args[0]} : {args[1]})"
        return {"abs": "fabs", "exp": "exp", "fma": "fma"}[name] + f"({', '.join(args)})"  # <tgmath.h>: typed
    raise ValueError(f"cannot render {ast.dump(node)} in C")


def to_c(lines, real: str, declared=()) -> tuple[str, ...]:
    """C statements for element type `real` ("float" or "double"); names not in `declared` are
    declared at their first assignment (spike and keep as int). Needs <tgmath.h>."""
    seen = set(declared)
    out = []
    for line in lines:
        assign, comment = _split(line)
        name = assign.targets[0].id
        expr = _c_expr(assign.value, real)
        if expr.startswith("(") and expr.endswith(")") and _balanced(expr[1:-1]):
            expr = expr[1:-1]
        decl = "" if name in seen else ("const int " if name in _BOOL_NAMES else f"{real} ")
        seen.add(name)
        out.append(f"{decl}{name} = {expr};" + (f"  // {comment}" if comment else ""))
    return tuple(out)


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0
