"""Parsing and validation of everything a client sends; each failure is an XaiError (400) saying what.

Routes call one `parse_*` function per request and get plain, checked values back. Whether a run,
step or sample set exists is the catalog's question (404), not this module's.
"""

import dataclasses
import json
import math
import re

from tb_xai_plugin import metadata
from tb_xai_plugin.engine import registry
from tb_xai_plugin.errors import XaiError

MAX_BODY_BYTES = 1 << 20
MAX_MODELS = 32
MAX_METHODS = 16
MAX_ATTRIBUTION_INDICES = 64
MAX_INDICES = 10000
MAX_TOP_K = 100
MAX_INT = 2**31 - 1
MAX_STEP = 2**63 - 1
MAX_RUN_CHARS = 512
MAX_LAYER_CHARS = 256
REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DIGITS = re.compile(r"^[0-9]{1,19}$")
TARGET_KINDS = ("predicted", "label", "class")


class PayloadTooLarge(XaiError):
    """The body is over MAX_BODY_BYTES."""

    http_status = 413


@dataclasses.dataclass(frozen=True)
class Target:
    """What to explain: the predicted class, the true label, or class `index`."""

    kind: str
    index: int = None

    def key(self):
        """The target as it enters cache keys and worker messages: 'predicted', 'label' or an int."""
        return self.index if self.kind == "class" else self.kind

    def as_dict(self):
        """The target as the engine takes it: {"kind"[, "index"]}."""
        return {"kind": self.kind, "index": self.index} if self.kind == "class" else {"kind": self.kind}


@dataclasses.dataclass(frozen=True)
class Attributions:
    """A checked POST attributions body."""

    models: list  # [(run, step)]
    samples: tuple  # (run, name)
    indices: list
    methods: list  # [(method id, params with defaults filled)]
    target: Target
    layer: str
    neuron: int
    seed: int
    request_id: str


@dataclasses.dataclass(frozen=True)
class Predictions:
    """A checked POST predictions body."""

    models: list
    samples: tuple
    indices: list  # None: all
    top_k: int
    request_id: str


@dataclasses.dataclass(frozen=True)
class Suggestions:
    """A checked POST suggestions body."""

    models: list
    samples: tuple
    layer: str
    neuron: int
    request_id: str
    evidence: object = None  # an Evidence, or None: the evidence axis was not asked for


@dataclasses.dataclass(frozen=True)
class Evidence:
    """The suggestions' opt-in evidence axis: which method's maps, on at most how many agreeing samples."""

    method: str
    params: dict
    max_samples: int


def read_json(request):
    """The request's JSON object body; 413 if over 1 MiB, 400 if not a JSON object of finite numbers."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise PayloadTooLarge("the request body is %d bytes; the limit is %d" % (length, MAX_BODY_BYTES))
    data = request.stream.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge("the request body is over %d bytes" % MAX_BODY_BYTES)
    try:
        body = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise XaiError("the request body is not valid JSON: %s" % e) from None
    if not isinstance(body, dict):
        raise XaiError("the request body must be a JSON object")
    return body


def _reject_constant(name):
    """json.loads hook: NaN and Infinity are not numbers a request may carry."""
    raise ValueError("%s is not allowed" % name)


def _finite_float(text):
    """json.loads hook: a float that overflows to infinity is rejected."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number %s is out of range" % text[:20])
    return value


def fields(body, where, required, optional=()):
    """Check that dict `body` has the `required` keys and no keys beyond `optional`."""
    if not isinstance(body, dict):
        raise XaiError("%s must be a JSON object" % where)
    missing = [k for k in required if k not in body]
    if missing:
        raise XaiError("%s lacks %s" % (where, ", ".join(map(repr, missing))))
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        raise XaiError("%s has unknown field %s" % (where, ", ".join(map(repr, unknown))))
    return body


def integer(value, where, low=0, high=MAX_INT):
    """`value` if it is an integer (not a bool or float) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise XaiError("%s must be an integer, not %s" % (where, _show(value)))
    if not low <= value <= high:
        raise XaiError("%s must be within [%d, %d], not %s" % (where, low, high, _show(value)))
    return value


def integer_text(text, where, high=MAX_INT):
    """An integer from a query-string value: digits only, at most `high`."""
    if text is None:
        raise XaiError("the query lacks %r" % where)
    if not DIGITS.match(text):
        raise XaiError("%s must be a non-negative integer, not %s" % (where, _show(text)))
    return integer(int(text), where, 0, high)


def run_name(value, where="run"):
    """A run name as TensorBoard spells it: relative, no '..' segment, no control characters."""
    if not isinstance(value, str) or not value:
        raise XaiError("%s must be a non-empty string" % where)
    if len(value) > MAX_RUN_CHARS:
        raise XaiError("%s is longer than %d characters" % (where, MAX_RUN_CHARS))
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise XaiError("%s contains a control character" % where)
    if value.startswith("/") or "\\" in value:
        raise XaiError("%s %s is not a run name" % (where, _show(value)))
    if value != "." and any(part in ("", ".", "..") for part in value.split("/")):
        raise XaiError("%s %s is not a run name" % (where, _show(value)))
    return value


def sample_set_name(value, where="samples.name"):
    """A sample-set name per metadata.NAME_PATTERN."""
    try:
        return metadata.check_name(value)
    except XaiError as e:
        raise XaiError("%s: %s" % (where, e)) from None


def models(value):
    """[(run, step)] from a list of 1..MAX_MODELS {"run", "step"} objects, without duplicates."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_MODELS:
        raise XaiError("models must be a list of 1 to %d {run, step} objects" % MAX_MODELS)
    out = []
    for i, item in enumerate(value):
        fields(item, "models[%d]" % i, ("run", "step"))
        out.append((run_name(item["run"], "models[%d].run" % i), integer(item["step"], "models[%d].step" % i, 0, MAX_STEP)))
    if len(set(out)) != len(out):
        raise XaiError("models lists the same run and step twice")
    return out


def samples(value):
    """(run, name) from {"run", "name"}."""
    fields(value, "samples", ("run", "name"))
    return run_name(value["run"], "samples.run"), sample_set_name(value["name"])


def indices(value, limit):
    """A list of 1..limit distinct sample indices."""
    if not isinstance(value, list) or not 1 <= len(value) <= limit:
        raise XaiError("indices must be a list of 1 to %d sample indices" % limit)
    out = [integer(v, "indices[%d]" % i) for i, v in enumerate(value)]
    if len(set(out)) != len(out):
        raise XaiError("indices lists a sample twice")
    return out


def methods(value):
    """[(method id, params)] with each method known and its params validated, defaults filled."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_METHODS:
        raise XaiError("methods must be a list of 1 to %d {id, params} objects" % MAX_METHODS)
    out = []
    for i, item in enumerate(value):
        fields(item, "methods[%d]" % i, ("id",), ("params",))
        if not isinstance(item["id"], str) or len(item["id"]) > 64:
            raise XaiError("methods[%d].id must be a method id" % i)
        method = registry.get(item["id"])
        params = item.get("params") or {}
        if not isinstance(params, dict):
            raise XaiError("methods[%d].params must be a JSON object" % i)
        out.append((method.id, method.validate_params(params)))
    if len({json.dumps(m, sort_keys=True) for m in out}) != len(out):
        raise XaiError("methods lists the same method and parameters twice")
    return out


def target(value):
    """A Target from {"kind": "predicted" | "label"} or {"kind": "class", "index": i}."""
    if value is None:
        return Target("predicted")
    fields(value, "target", ("kind",), ("index",))
    kind = value["kind"]
    if kind not in TARGET_KINDS:
        raise XaiError("target.kind must be one of %s, not %s" % (", ".join(TARGET_KINDS), _show(kind)))
    if kind == "class":
        if "index" not in value:
            raise XaiError("target of kind 'class' needs an index")
        return Target("class", integer(value["index"], "target.index"))
    if "index" in value:
        raise XaiError("target.index is only for kind 'class'")
    return Target(kind)


def layer(value):
    """A layer name or None (whether the model has it is the engine's question)."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_LAYER_CHARS or any(ord(c) < 32 for c in value):
        raise XaiError("layer must be a layer name or null")
    return value


def neuron(value):
    """A channel index or None."""
    return None if value is None else integer(value, "neuron")


def request_id(value):
    """A client request id [A-Za-z0-9_-]{1,64}, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not REQUEST_ID.match(value):
        raise XaiError("request_id must match [A-Za-z0-9_-]{1,64}")
    return value


def parse_attributions(body):
    """Attributions from a POST attributions body."""
    fields(
        body, "the request", ("models", "samples", "indices", "methods"), ("target", "layer", "neuron", "request_id", "seed")
    )
    return Attributions(
        models=models(body["models"]),
        samples=samples(body["samples"]),
        indices=indices(body["indices"], MAX_ATTRIBUTION_INDICES),
        methods=methods(body["methods"]),
        target=target(body.get("target")),
        layer=layer(body.get("layer")),
        neuron=neuron(body.get("neuron")),
        seed=integer(body.get("seed", 0), "seed"),
        request_id=request_id(body.get("request_id")),
    )


def parse_predictions(body):
    """Predictions from a POST predictions body."""
    fields(body, "the request", ("models", "samples"), ("indices", "top_k", "request_id"))
    given = body.get("indices")
    return Predictions(
        models=models(body["models"]),
        samples=samples(body["samples"]),
        indices=None if given is None else indices(given, MAX_INDICES),
        top_k=integer(body.get("top_k", 5), "top_k", 1, MAX_TOP_K),
        request_id=request_id(body.get("request_id")),
    )


def parse_suggestions(body):
    """Suggestions from a POST suggestions body."""
    fields(body, "the request", ("models", "samples"), ("layer", "neuron", "request_id", "evidence"))
    parsed = Suggestions(
        models=models(body["models"]),
        samples=samples(body["samples"]),
        layer=layer(body.get("layer")),
        neuron=neuron(body.get("neuron")),
        request_id=request_id(body.get("request_id")),
        evidence=evidence(body.get("evidence")),
    )
    if parsed.neuron is not None and parsed.layer is None:
        raise XaiError("neuron needs a layer")
    return parsed


@dataclasses.dataclass(frozen=True)
class Scores:
    """A checked POST scores body: an attributions request plus the faithfulness metrics' parameters."""

    maps: Attributions
    metrics: tuple
    fill: object  # "mean" | "zero" | "blur" | a float
    steps: int
    region: int


def parse_scores(body):
    """Scores from a POST scores body (engine.faithfulness checks the metric parameters)."""
    from tb_xai_plugin.engine import faithfulness

    score_fields = ("metrics", "fill", "steps", "region")
    maps = parse_attributions({k: v for k, v in body.items() if k not in score_fields})
    metrics, fill = body.get("metrics", list(faithfulness.METRICS)), body.get("fill", "mean")
    steps, region = body.get("steps", 16), body.get("region", 4)
    faithfulness.check_params(metrics, fill, steps, region)
    return Scores(maps, tuple(metrics), fill if isinstance(fill, str) else float(fill), steps, region)


MAX_SANITY_INDICES = 16
MAX_STAGES = 64
MAX_EVIDENCE_SAMPLES = 256
RANDOMIZATIONS = ("permute", "init")


def evidence(value):
    """None (absent, null or false), or the Evidence of true / {"method", "params", "max_samples"} (defaults: gradient, 64)."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    fields(value, "evidence", (), ("method", "params", "max_samples"))
    try:
        (method, params), = methods([{"id": value.get("method", "gradient"), "params": value.get("params") or {}}])
    except XaiError as e:
        raise XaiError("evidence: %s" % e) from None
    return Evidence(method, params, integer(value.get("max_samples", 64), "evidence.max_samples", 1, MAX_EVIDENCE_SAMPLES))


@dataclasses.dataclass(frozen=True)
class Sanity:
    """A checked POST sanity body: an attributions request plus the randomization's parameters."""

    maps: Attributions
    max_stages: int
    randomization: str


def parse_sanity(body):
    """Sanity from a POST sanity body (at most MAX_SANITY_INDICES samples: every stage recomputes every map)."""
    extra = ("max_stages", "randomization")
    maps = parse_attributions({k: v for k, v in body.items() if k not in extra})
    if len(maps.indices) > MAX_SANITY_INDICES:
        raise XaiError("sanity takes at most %d indices" % MAX_SANITY_INDICES)
    mode = body.get("randomization", RANDOMIZATIONS[0])
    if mode not in RANDOMIZATIONS:
        raise XaiError("randomization must be one of %s, not %s" % (", ".join(RANDOMIZATIONS), _show(mode)))
    return Sanity(maps, integer(body.get("max_stages", 8), "max_stages", 1, MAX_STAGES), mode)


@dataclasses.dataclass(frozen=True)
class FirstLast:
    """A checked POST first_last body: run names and an attributions request (its models are filled in by the service)."""

    runs: list
    maps: Attributions


def parse_first_last(body):
    """FirstLast from a POST first_last body: {"runs": [names], ...attributions fields but "models"}."""
    fields(body, "the request", ("runs", "samples", "indices", "methods"), ("target", "layer", "neuron", "request_id", "seed"))
    runs = body["runs"]
    if not isinstance(runs, list) or not 1 <= len(runs) <= MAX_MODELS:
        raise XaiError("runs must be a list of 1 to %d run names" % MAX_MODELS)
    names = [run_name(r, "runs[%d]" % i) for i, r in enumerate(runs)]
    if len(set(names)) != len(names):
        raise XaiError("runs lists a run twice")
    rest = {k: v for k, v in body.items() if k != "runs"}
    return FirstLast(names, parse_attributions(dict(rest, models=[{"run": r, "step": 0} for r in names])))


def parse_agreement(body):
    """Attributions from a POST agreement body (the same fields)."""
    return parse_attributions(body)


def parse_applicability(body):
    """(run, step) of a POST applicability body."""
    fields(body, "the request", ("run", "step"))
    return run_name(body["run"]), integer(body["step"], "step", 0, MAX_STEP)


def parse_cancel(body):
    """The request id of a POST cancel body."""
    fields(body, "the request", ("request_id",))
    if body["request_id"] is None:
        raise XaiError("request_id must match [A-Za-z0-9_-]{1,64}")
    return request_id(body["request_id"])


def _show(value):
    """A short printable rendering of a client value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
