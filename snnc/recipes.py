"""Training recipes: their parameters and papers, the `--recipe` string, and the passes they select.

`sml(n=3, k=128)+tet(lam=0.001)+tit(stages=[(2,30),(4,10)])` parses with the
same grammar as .snn files (`recipe_start`), binds each call against its
recipe's parameters, resolves names defined by `recipe NAME = ...` in the
network file, checks conflicts, and yields the pass pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snnc.diagnostics import SOURCES, Loc, Note, SnncError, did_you_mean
from snnc.frontend import ast
from snnc.frontend.parser import parse_tree
from snnc.frontend.transform import ToAst
from snnc.frontend.values import DottedValue, Env, evaluate
from snnc.params import OPTIONAL, Param, ParamError, Symbol, format_value
from snnc.runtime.options import MAX_EPOCHS

UNIT = dict(lo=0.0, hi=1.0)
POSITIVE = dict(lo=0.0, lo_open=True)


@dataclass(frozen=True)
class Recipe:
    name: str
    doc: str
    paper: str
    params: tuple[Param, ...] = ()
    role: str = "addon"  # loss: picks the loss (sdt, tet); addon: composes with a loss


RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("sdt", "standard direct training: cross-entropy of the time-averaged output (docs/methods.md §4)",
           "common baseline", role="loss"),
    Recipe("tet", "temporal efficient training: per-step CE plus an MSE regulariser (docs/methods.md §4)",
           "Deng et al., ICLR 2022 (tet-temporal-efficient-training)",
           (Param("lam", "float", 0.05, **UNIT, doc="weight of the MSE term; 0.001 for ImageNet/DVS"),
            Param("phi", "float", OPTIONAL,
                  doc="MSE target; default: the vth of the neurons before the output layer (TET eq. 12)")),
           role="loss"),
    Recipe("sml", "surrogate module learning: auxiliary ANN exits after residual blocks (docs/methods.md §6)",
           "Deng et al., ICML 2023 (sml-surrogate-module-learning)",
           (Param("n", "int", 2, lo=1, doc="number of modules, placed at ceil(i*B/(n+1))"),
            Param("at", "any", OPTIONAL, doc="explicit 1-based block indices or names, e.g. [3, 6] or [layer2.0]"),
            Param("k", "int", 256, lo=1, doc="module width"),
            Param("alpha", "float", 0.5, lo=0.0, doc="weight of each module's CE"),
            Param("lam", "float", 0.9, **UNIT, doc="weight of the KL distillation"),
            Param("tdis", "float", 3.0, **POSITIVE, doc="distillation temperature"))),
    Recipe("tit", "time inheritance training: stages of (T, epochs[, lr]) inheriting weights (docs/methods.md §5)",
           "TET paper, section 'Time Inheritance Training'",
           (Param("stages", "any", doc="e.g. [(2, 30), (4, 10)]; lr per stage optional: (4, 10, 0.01)"),)),
    Recipe("cpng", "control the proportion of non-zero gradients: adapt beta per layer (docs/methods.md §7)",
           "Chen et al. (cpng-efficient-surrogate-gradients)",
           (Param("chi_limit", "float", 0.2, lo=0.0, lo_open=True, hi=1.0, hi_open=True,
                  doc="lower bound of the recorded chi"),
            Param("beta", "float", OPTIONAL, **POSITIVE, doc="initial beta (default: the layer's own, 1.0)"),
            Param("per_batch", "bool", False, doc="update after every batch instead of once per epoch"))),
    Recipe("msg", "masked surrogate gradient: drop surrogate gradients at random (docs/methods.md §3)",
           "Brain-Cog-Lab MSG (msg-two-masked-surrogate-gradient)",
           (Param("mask_p", "float", 0.5, lo=0.0, hi=1.0, hi_open=True, doc="probability to mask"),
            Param("rescale", "bool", False, doc="divide kept gradients by 1 - mask_p"))),
    Recipe("two", "temporally weighted output: per-step output weights from training accuracy (docs/methods.md §8)",
           "Brain-Cog-Lab MSG paper, eq. 15-17 (msg-two-masked-surrogate-gradient)",
           (Param("m", "float", 0.7, lo=0.0, hi=1.0, hi_open=True, doc="momentum of the weight update"),
            Param("warmup", "int", 5, lo=0, doc="f = 1 during epochs 0..warmup"))),
]}
DEFAULT = "sdt"
# How a resolved recipe is spelled: add-ons first, then the loss, e.g. sml+tet+tit.
CANONICAL_ORDER = ("sml", "cpng", "msg", "two", "tet", "sdt", "tit")


@dataclass(frozen=True)
class RecipeCall:
    name: str
    params: dict
    loc: Loc | None = None


@dataclass
class RecipeSet:
    """A resolved recipe: at most one call per recipe, in canonical order."""

    calls: dict[str, RecipeCall] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.calls

    def get(self, name: str) -> dict | None:
        call = self.calls.get(name)
        return call.params if call else None

    @property
    def loss(self) -> str:
        return "tet" if "tet" in self.calls else "sdt"

    def filled(self, name: str, **values) -> "RecipeSet":
        """A copy where recipe `name` also has `values` for the parameters it left to a default."""
        call = self.calls[name]
        given = {**values, **call.params}
        params = {p.name: given[p.name] for p in RECIPES[name].params if p.name in given}
        return RecipeSet({**self.calls, name: RecipeCall(name, params, call.loc)})

    def canonical(self) -> str:
        """e.g. `sml(alpha=0.5, ..)+tet(lam=0.05, phi=1.0)` with every parameter spelled out."""
        parts = []
        for name in CANONICAL_ORDER:
            if name in self.calls:
                params = self.calls[name].params
                inner = ", ".join(f"{k}={_spell(v)}" for k, v in params.items())
                parts.append(f"{name}({inner})" if inner else name)
        return "+".join(parts)

    def slug(self) -> str:
        return "+".join(name for name in CANONICAL_ORDER if name in self.calls)


def _spell(value) -> str:
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) for v in value):
        return "[" + ", ".join("(" + ", ".join(format_value(x) for x in v) + ")" for v in value) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_spell(v) for v in value) + "]"
    return format_value(value)


# ------------------------------------------------------------------- parsing
def _parse_calls(text: str, file: str) -> list[ast.Call]:
    SOURCES.add(file, text)
    if not text.strip():  # also " ", "\t", "\u2028": nothing for the parser to point at
        raise SnncError("the recipe is empty", Loc.point(file, 1, 1, len(text.splitlines()[0]) if text else 1),
                        "e.g. --recipe sml+tet; see `snnc recipes`")
    return list(ToAst(file, text).transform(parse_tree(text, file, "recipe_start")))


def parse_recipe(text: str, named: dict[str, ast.RecipeDef] | None = None, file: str = "--recipe") -> RecipeSet:
    """Parses and validates a recipe string.

    Names defined by `recipe NAME = ...` in the network file expand to their
    calls. A file recipe named like a built-in one (`recipe sml = sml(k = 64)`)
    sets that network's defaults for it; arguments on the command line win.
    """
    named = named or {}
    calls = _expand(_parse_calls(text, file), _user_defined(named))
    return _resolve(calls, named)


def check_definitions(definitions: tuple[ast.RecipeDef, ...] | list[ast.RecipeDef]) -> None:
    """Checks every `recipe NAME = ...` of a network file: defined once, expands, and binds.

    What `--recipe NAME` would report, for every NAME, without waiting for someone to ask for it."""
    named: dict[str, ast.RecipeDef] = {}
    for definition in definitions:
        if definition.name in named:
            raise SnncError(f"recipe '{definition.name}' is defined twice", definition.name_loc,
                            notes=[Note("first defined here", named[definition.name].name_loc)])
        named[definition.name] = definition
    memo: dict = {}  # shared, so checking every definition costs the size of the file, not its square
    user = _user_defined(named)
    for definition in definitions:
        call = ast.Call(definition.name, (), definition.name_loc, definition.name_loc)
        _resolve(_expand([call], user, memo), named)


def _user_defined(named: dict[str, ast.RecipeDef]) -> dict[str, ast.RecipeDef]:
    """The named recipes that expand (those named like a built-in one only set its defaults)."""
    return {n: r for n, r in named.items() if n not in RECIPES}


def _resolve(calls: list[ast.Call], named: dict[str, ast.RecipeDef]) -> RecipeSet:
    """The RecipeSet of expanded built-in calls: each bound, given once, one loss at most."""
    overrides = {name: r for name, r in named.items() if name in RECIPES}
    seen: dict[str, RecipeCall] = {}
    for call in calls:
        rc = _bind(_with_file_defaults(call, overrides))
        if rc.name in seen:
            again = rc.loc == seen[rc.name].loc  # the same call, reached twice through named recipes
            raise SnncError(f"recipe '{rc.name}' is given twice", rc.loc,
                            "a named recipe that includes it is named twice" if again else None,
                            notes=[] if again else [Note("first given here", seen[rc.name].loc)])
        seen[rc.name] = rc
    loss = [n for n in seen if RECIPES[n].role == "loss"]
    if len(loss) > 1:
        a, b = (seen[n] for n in loss[:2])
        raise SnncError(f"recipes '{a.name}' and '{b.name}' conflict: both choose the loss", b.loc,
                        "use one of them; sml and two combine with either")
    out = RecipeSet()
    out.calls = {name: seen[name] for name in CANONICAL_ORDER if name in seen}
    return out


def _with_file_defaults(call: ast.Call, overrides: dict[str, ast.RecipeDef]) -> ast.Call:
    """`call` with the network file's arguments for its recipe prepended (later arguments win)."""
    if call.name not in overrides:
        return call
    definition = overrides[call.name]
    base = [c for c in definition.calls if c.name == call.name]
    if len(definition.calls) != 1 or not base:
        raise SnncError(f"'recipe {call.name} = ...' may only set defaults of {call.name} itself",
                        definition.loc, f"e.g. recipe {call.name} = {call.name}(...)")
    given = {a.name for a in call.args if a.name is not None}
    if any(a.name is None for a in call.args) or any(a.name is None for a in base[0].args):
        raise SnncError("recipe defaults and overrides must name their parameters", definition.loc)
    args = tuple(a for a in base[0].args if a.name not in given) + call.args
    return ast.Call(call.name, args, call.loc, call.name_loc, True)


# Bounds on `recipe NAME = ...` definitions: a valid recipe has at most one call per built-in recipe, so
# these only stop definitions that nest absurdly deep or double at every level (2**depth calls).
MAX_RECIPE_DEPTH = 32     # named recipes naming named recipes
MAX_RECIPE_CALLS = 64     # built-in calls one recipe expands to


def _expand(calls: list[ast.Call], named: dict[str, ast.RecipeDef], memo: dict | None = None) -> list[ast.Call]:
    """`calls` with every named recipe replaced by the built-in calls it stands for.

    Iterative, and each definition is expanded once (into `memo`), so a long chain cannot reach
    the recursion limit and definitions that double at every level cost their size, not 2**depth."""
    memo = {} if memo is None else memo  # name -> (built-in calls, nesting depth)
    top = ast.RecipeDef("", None, tuple(calls), None)  # type: ignore[arg-type]
    frames = [(top, iter(top.calls))]
    while frames:
        definition, pending = frames[-1]
        call = next(pending, None)
        if call is None:
            frames.pop()
            memo[definition.name] = _combine(definition, named, memo)
            continue
        if call.name not in named:
            continue
        if call.args or call.has_parens:
            raise SnncError(f"'{call.name}' is a named recipe and takes no arguments", call.loc)
        path = [d.name for d, _ in frames[1:]]
        if call.name in path:
            cycle = " -> ".join(path[path.index(call.name):] + [call.name])
            raise SnncError(f"recipe '{call.name}' refers to itself: {cycle}", call.loc,
                            "a recipe cannot include itself, directly or through other named recipes",
                            notes=[Note(f"'{call.name}' is defined here", named[call.name].loc)])
        if call.name in memo:
            continue
        if len(path) >= MAX_RECIPE_DEPTH:
            raise SnncError(f"recipe '{path[0]}' nests named recipes more than {MAX_RECIPE_DEPTH} deep", call.loc,
                            f"define it from built-in recipes, e.g. recipe {path[0]} = sml + tet",
                            notes=[Note(f"'{path[0]}' is defined here", named[path[0]].loc)])
        frames.append((named[call.name], iter(named[call.name].calls)))
    return list(memo.pop("")[0])


def _combine(definition: ast.RecipeDef, named: dict[str, ast.RecipeDef], memo: dict) -> tuple[tuple, int]:
    """(built-in calls, nesting depth) of a definition whose named recipes are all in `memo`."""
    calls: list[ast.Call] = []
    depth = 0
    for call in definition.calls:
        if call.name in named:
            inner, inner_depth = memo[call.name]
            calls += inner
            depth = max(depth, inner_depth)
        else:
            calls.append(call)
        if len(calls) > MAX_RECIPE_CALLS:
            what = f"recipe '{definition.name}'" if definition.name else "the recipe"
            raise SnncError(f"{what} expands to more than {MAX_RECIPE_CALLS} recipe calls",
                            definition.loc or call.loc, "a recipe names each built-in recipe at most once")
    if definition.name and depth + 1 > MAX_RECIPE_DEPTH:
        raise SnncError(f"recipe '{definition.name}' nests named recipes more than {MAX_RECIPE_DEPTH} deep",
                        definition.loc, f"define it from built-in recipes, e.g. recipe {definition.name} = sml + tet")
    return tuple(calls), depth + 1


def _bind(call: ast.Call) -> RecipeCall:
    if call.name not in RECIPES:
        raise SnncError(f"unknown recipe '{call.name}'", call.name_loc,
                        did_you_mean(call.name, RECIPES, "recipe") or "see `snnc recipes`")
    recipe = RECIPES[call.name]
    env = Env({})
    names = [p.name for p in recipe.params]
    values: dict = {}
    locs: dict = {}
    for i, arg in enumerate(call.args):
        key = arg.name
        if key is None:
            if i >= len(names):
                raise SnncError(f"recipe '{call.name}' takes at most {len(names)} positional argument(s)", arg.loc,
                                _signature(recipe))
            key = names[i]
        if key not in names:
            raise SnncError(f"recipe '{call.name}' has no parameter '{key}'", arg.loc,
                            did_you_mean(key, names, "parameter") or _signature(recipe))
        if key in values:
            raise SnncError(f"recipe '{call.name}': parameter '{key}' is given twice", arg.loc)
        values[key], locs[key] = evaluate(arg.value, env), arg.loc
    params: dict = {}
    for p in recipe.params:
        if p.name not in values:
            if p.required:
                raise SnncError(f"recipe '{call.name}' needs '{p.name}'", call.loc, p.describe())
            if not p.optional:
                params[p.name] = p.default
            continue
        try:
            params[p.name] = _coerce(recipe, p, values[p.name])
        except ParamError as exc:
            raise SnncError(f"recipe '{call.name}': {exc.message}", locs[p.name], exc.hint or p.describe()) from None
    if call.name == "sml" and "at" in params and "n" in values:
        raise SnncError("sml takes either 'n' or 'at', not both", locs["n"])
    return RecipeCall(call.name, params, call.loc)


def _signature(recipe: Recipe) -> str:
    return f"{recipe.name}(" + ", ".join(p.name for p in recipe.params) + ")"


def _coerce(recipe: Recipe, p: Param, value):
    if recipe.name == "tit" and p.name == "stages":
        return _stages(value)
    if recipe.name == "sml" and p.name == "at":
        items = value if isinstance(value, list) else [value]
        out = []
        for item in items:
            if isinstance(item, Symbol):  # a stage name such as `stem`: checked against the graph later
                item = item.name
            elif isinstance(item, bool) or not isinstance(item, (int, DottedValue)):
                raise ParamError(f"'at' lists block indices or names, not {format_value(item)}")
            if isinstance(item, int) and item < 1:
                raise ParamError(f"'at' indices are 1-based; {item} is not a block")
            out.append(str(item) if isinstance(item, DottedValue) else item)
        if not out:
            raise ParamError("'at' is empty")
        return tuple(out)
    return p.coerce(value)


def _stages(value) -> tuple:
    if not isinstance(value, list) or not value:
        raise ParamError("'stages' must be a list such as [(2, 30), (4, 10)]")
    out = []
    for stage in value:
        if not isinstance(stage, tuple) or len(stage) not in (2, 3):
            raise ParamError(f"each stage is (T, epochs) or (T, epochs, lr), not {format_value(stage)}")
        t, epochs = stage[0], stage[1]
        for what, v in (("T", t), ("epochs", epochs)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParamError(f"stage {what} must be a positive integer, not {format_value(v)}")
        if len(stage) == 3:
            lr = stage[2]
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
                raise ParamError(f"stage lr must be a positive number, not {format_value(lr)}")
            out.append((t, epochs, float(lr)))
        else:
            out.append((t, epochs))
    if sum(stage[1] for stage in out) > MAX_EPOCHS:
        raise ParamError(f"the stages train {sum(stage[1] for stage in out):,} epochs in all; at most {MAX_EPOCHS:,}")
    return tuple(out)


def describe_all() -> str:
    """The text of `snnc recipes`."""
    lines = []
    for r in RECIPES.values():
        lines.append(f"{r.name:<6} {r.doc}")
        lines.append(f"{'':<6} source: {r.paper}")
        for p in r.params:
            lines.append(f"{'':<8}{p.describe()}" + (f"  -- {p.doc}" if p.doc else ""))
    lines.append("")
    lines.append("Combine with '+': sml(n=3, k=128)+tet(lam=0.001)+tit(stages=[(2,30),(4,10)]).")
    lines.append("sdt and tet choose the loss (default sdt); sml, two, msg, cpng and tit add to it.")
    return "\n".join(lines)
