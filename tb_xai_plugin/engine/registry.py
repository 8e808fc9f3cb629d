"""The registry of attribution methods: `Method` records, defined once for every backend (engine.methods).

A record says what a method is (id, label, family, description, parameters, flags, version) and,
through `applies`, which models it fits by the manifest alone (pure Python). How a method is computed
is each backend's business (engine.backends: `implements`), with the signature

    compute(model, x, targets, params, layer, neuron, rng) -> np.ndarray [N, H, W, C] or [N, H, W]

where `model` is the backend's loaded model, `x` the preprocessed batch (float32, NHWC),
`targets` one class index per image (int64 [N]), `params` the validated parameters (defaults filled),
`layer` a layer name or None, `neuron` a channel index or None, `rng` a `np.random.Generator`
seeded per request. The dispatcher (engine.attribution) batches, reduces channels and checks shapes.

Pure Python: the plugin process imports this to list methods without loading TensorFlow.
"""

import dataclasses
from typing import Callable, Optional

from tb_xai_plugin.errors import XaiError

PARAM_TYPES = ("int", "float", "bool", "choice")


@dataclasses.dataclass(frozen=True)
class Param:
    """One control of a method: its name, type, default and range or choices."""

    name: str
    type: str
    default: object
    label: str = ""
    min: Optional[float] = None
    max: Optional[float] = None
    choices: tuple = ()

    def validate(self, value):
        """Return `value` coerced to this parameter's type, or raise XaiError saying what is wrong."""
        where = "parameter %r" % self.name
        if self.type == "bool":
            if not isinstance(value, bool):
                raise XaiError("%s must be true or false, not %r" % (where, value))
            return value
        if self.type == "choice":
            if value not in self.choices:
                raise XaiError("%s must be one of %s, not %r" % (where, ", ".join(map(str, self.choices)), value))
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise XaiError("%s must be a number, not %r" % (where, value))
        if self.type == "int":
            if float(value) != int(value):
                raise XaiError("%s must be a whole number, not %r" % (where, value))
            value = int(value)
        else:
            value = float(value)
        if value != value or (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise XaiError("%s must be within [%s, %s], not %r" % (where, self.min, self.max, value))
        return value

    def describe(self):
        """The JSON the frontend builds a control from (see docs/http_api.md, GET methods)."""
        out = {"name": self.name, "type": self.type, "default": self.default, "label": self.label or self.name}
        if self.type in ("int", "float"):
            out.update(min=self.min, max=self.max)
        if self.type == "choice":
            out["choices"] = list(self.choices)
        return out


@dataclasses.dataclass(frozen=True)
class Method:
    """An attribution method: what the UI shows, what it takes, and which models it fits by their manifest."""

    id: str
    label: str
    family: str  # "gradient", "lrp", "deeptaylor", "cam", "activation", "perturbation", ...
    description: str  # one line, shown as a tooltip
    params: tuple = ()
    signed: bool = True  # maps may be negative: diverging colormap
    takes_layer: bool = False
    takes_neuron: bool = False
    needs_logits: bool = True  # explain the pre-softmax output
    sampling: bool = False  # draws random numbers: reproducible only with a seed
    applies: Optional[Callable] = None  # applies(model) -> None if usable, else why not (reads model.layers only)
    version: int = 1  # bumped when the method's maps change (a fix): cache keys hold it

    def validate_params(self, given):
        """Defaults overlaid with `given`, each validated; unknown names raise XaiError."""
        given = dict(given or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise XaiError("method %r has no parameter %s" % (self.id, ", ".join(map(repr, unknown))))
        return {name: p.validate(given[name]) if name in given else p.default for name, p in known.items()}

    def reason_unusable(self, model):
        """None if this method can explain `model`, else a sentence saying why not."""
        return self.applies(model) if self.applies else None

    def describe(self):
        """The JSON of GET methods."""
        return {
            "id": self.id,
            "label": self.label,
            "family": self.family,
            "description": self.description,
            "signed": self.signed,
            "takes_layer": self.takes_layer,
            "takes_neuron": self.takes_neuron,
            "sampling": self.sampling,
            "params": [p.describe() for p in self.params],
        }


METHODS = {}


def register(method):
    """Add `method` to the registry (ids are unique) and return it."""
    if method.id in METHODS:
        raise ValueError("method %r registered twice" % method.id)
    METHODS[method.id] = method
    return method


def get(method_id):
    """The registered method `method_id`, or XaiError naming the known ones."""
    _load_all()
    if method_id not in METHODS:
        raise XaiError("unknown method %r; known: %s" % (method_id, ", ".join(sorted(METHODS))))
    return METHODS[method_id]


def describe_methods():
    """Every registered method as JSON, in registration order."""
    _load_all()
    return [m.describe() for m in METHODS.values()]


def _load_all():
    """Import the module that registers every method's record (pure Python)."""
    from tb_xai_plugin.engine import methods  # noqa: F401  (registers on import)
