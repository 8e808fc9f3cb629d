"""The `xai` TensorBoard plugin: its routes (docs/http_api.md) over the catalog, caches and workers.

Routes only parse and check the request, call one function and answer through http_util.Respond;
XaiError becomes its http_status with {"error": message}. The work is in catalog.py (listing),
service.py (compute) and the worker processes.
"""

import argparse
import logging
import os
import re

from tensorboard import context as tb_context
from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_xai_plugin import metadata, model_info
from tb_xai_plugin.engine import registry, targets
from tb_xai_plugin.errors import NotFoundError, XaiError
from tb_xai_plugin.plugin import encoding, origins, parsing
from tb_xai_plugin.plugin import scoring
from tb_xai_plugin.plugin import map_agreement, sanity_check
from tb_xai_plugin.plugin import applicability
from tb_xai_plugin.plugin.cache import ResultCache
from tb_xai_plugin.plugin.catalog import Catalog
from tb_xai_plugin.plugin.jobs import Jobs
from tb_xai_plugin.plugin.result_store import ResultStore
from tb_xai_plugin.plugin.service import XaiService, checkpoint_key
from tb_xai_plugin.plugin.workers import WorkerPool

logger = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
JSON = "application/json"
DEFAULT_FLAGS = {
    "xai_workers": 1,
    "xai_cache_mb": 512,
    "xai_cache_dir": "~/.cache/tb-xai",
    "xai_cache_dir_mb": 2048,
    "xai_allow_unsafe_models": False,
    "xai_worker_memory_mb": 0,
}
PLACEHOLDER_JS = (
    "export async function render() {\n"
    "  document.body.textContent = 'The tb-xai dashboard is not built: run `make frontend` (or install the wheel).';\n"
    "}\n"
)
VERSIONED_CACHE_S = 365 * 24 * 3600  # a URL naming its content's sha256 never changes meaning
VERSION = re.compile(r"^[0-9a-f]{1,64}$")


class ManifestModel:
    """What a method's `applies(model)` reads (layers, classes, input shape), taken from a manifest."""

    def __init__(self, manifest):
        self.manifest = manifest
        self.layers = manifest["layers"]
        self.num_classes = int(manifest["num_classes"])
        self.input_shape = tuple(manifest["input_shape"])
        self.head = model_info.manifest_head(manifest)


UNKNOWN_UNTIL_COMPUTED = "unknown until computed: the backend checks the loaded model (POST applicability)"


def method_applicability(manifest):
    """{method id: {"ok": false | null, "reason"}} from a manifest alone: false where the method's own rule refuses,
    null (unknown until a worker checked the loaded model) everywhere else, never true by default."""
    registry.describe_methods()  # imports the method modules, which register themselves
    model = ManifestModel(manifest)
    out = {}
    for method in registry.METHODS.values():
        try:
            reason = method.reason_unusable(model) or targets.reason_head_unusable(model, method)
        except Exception:  # noqa: BLE001  (a rule that needs the loaded model: unknown here)
            reason = None
        out[method.id] = {"ok": False, "reason": reason} if reason else {"ok": None, "reason": UNKNOWN_UNTIL_COMPUTED}
    return out


def flag(flags, name):
    """A flag's value from TensorBoard's flags, or its default when absent (tests, other hosts)."""
    return getattr(flags, name, DEFAULT_FLAGS[name]) if flags is not None else DEFAULT_FLAGS[name]


def route(method):
    """Wrap a handler(request) -> werkzeug response: checks the HTTP method, and for POST the
    X-XAI-Request header and same Origin; turns XaiError into its 4xx/503 JSON answer."""

    def wrap(handler):
        @wrappers.Request.application
        def app(self, request):
            try:
                if request.method != method:
                    return http_util.Respond(
                        request, {"error": "use %s for this route" % method}, JSON, code=405, headers=[("Allow", method)]
                    )
                if method == "POST":
                    check_post(request)
                return handler(self, request)
            except XaiError as e:
                return http_util.Respond(request, {"error": str(e)}, JSON, code=getattr(e, "http_status", 400))
            except Exception as e:  # noqa: BLE001  (a bug: still a JSON answer, and logged)
                logger.exception("tb-xai route %s failed", request.path)
                return http_util.Respond(request, {"error": "internal error: %s" % e}, JSON, code=500)

        return app

    return wrap


def check_post(request):
    """403 unless the request carries X-XAI-Request: 1 and comes from this server's own origin (or its proxy's, origins.py)."""
    if request.headers.get("X-XAI-Request") != "1":
        raise Forbidden("compute requests need the header X-XAI-Request: 1")
    origin = request.headers.get("Origin")
    if origin is not None and not origins.is_own_origin(origin, request.scheme, request.host, request.headers):
        raise Forbidden("requests from another origin (%s) are refused" % origin[:100])


class Forbidden(XaiError):
    """A POST without the custom header or from a foreign origin."""

    http_status = 403


class XaiPlugin(base_plugin.TBPlugin):
    """Explains image classifiers from checkpoints logged during training (the XAI tab)."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        flags = context.flags
        self.logdir = context.logdir
        self.catalog = Catalog(context.logdir, context.data_provider)
        cache_dir = flag(flags, "xai_cache_dir")
        self.cache = ResultCache(
            int(flag(flags, "xai_cache_mb")) << 20,
            os.path.expanduser(cache_dir) if cache_dir else None,
            disk_budget_bytes=int(flag(flags, "xai_cache_dir_mb")) << 20,
        )
        self.pool = WorkerPool(
            flag(flags, "xai_workers"),
            options={
                "allow_unsafe": bool(flag(flags, "xai_allow_unsafe_models")),
                # local copies of remote (gs://) checkpoints, content-addressed (engine/local_copy.py)
                "checkpoint_cache_dir": os.path.join(os.path.expanduser(cache_dir), "checkpoints") if cache_dir else None,
            },
            memory_limit_mb=int(flag(flags, "xai_worker_memory_mb")),
        )
        self.jobs = Jobs()
        self.results = ResultStore()  # tb-xai precompute's results in each run, read before a worker is asked
        self.service = XaiService(self.catalog, self.cache, self.pool, self.jobs, results=self.results)

    def get_plugin_apps(self):
        """Route -> WSGI app, per docs/http_api.md."""
        return {
            "/index.js": self._serve_index_js,
            "/static/*": self._serve_static,
            "/runs": self._serve_runs,
            "/methods": self._serve_methods,
            "/layers": self._serve_layers,
            "/applicability": self._serve_applicability,
            "/image": self._serve_image,
            "/progress": self._serve_progress,
            "/predictions": self._serve_predictions,
            "/attributions": self._serve_attributions,
            "/suggestions": self._serve_suggestions,
            "/scores": self._serve_scores,
            "/sanity": self._serve_sanity,
            "/first_last": self._serve_first_last,
            "/agreement": self._serve_agreement,
            "/cancel": self._serve_cancel,
        }

    def is_active(self):
        """False: TensorBoard asks only when its data provider lists no 'xai' data, so there is none."""
        return False

    def data_plugin_names(self):
        """The summaries this plugin reads: those with plugin_name 'xai'."""
        return (metadata.PLUGIN_NAME,)

    def frontend_metadata(self):
        """An ES module dashboard in the 'XAI' tab."""
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="XAI")

    def close(self):
        """Stop the worker processes and finish writing the disk cache."""
        self.pool.close()
        self.cache.flush()

    # -- GET --------------------------------------------------------------------------------

    @route("GET")
    def _serve_index_js(self, request):
        """The dashboard bundle, or a placeholder module when it is not built."""
        path = os.path.join(STATIC_DIR, "index.js")
        if not os.path.exists(path):
            return http_util.Respond(request, PLACEHOLDER_JS, "text/javascript")
        with open(path, "rb") as f:
            return http_util.Respond(request, f.read(), "text/javascript")

    @route("GET")
    def _serve_static(self, request):
        """A file of the static folder, chosen by name from that folder's listing."""
        name = request.path.rsplit("/", 1)[-1]
        files = os.listdir(STATIC_DIR) if os.path.isdir(STATIC_DIR) else []
        if name not in files:  # the client's text selects a listed file, it never forms a path
            raise NotFoundError("no static file %r" % name[:100])
        mimetype = {"js": "text/javascript", "css": "text/css", "map": JSON}.get(name.rsplit(".", 1)[-1], "application/octet-stream")
        with open(os.path.join(STATIC_DIR, files[files.index(name)]), "rb") as f:
            return http_util.Respond(request, f.read(), mimetype)

    @route("GET")
    def _serve_runs(self, request):
        """GET runs: every run with checkpoints or sample sets, and the listing errors ({"run", "message"}) the tab shows."""
        ctx, eid = request_context(request)
        runs, errors = self.catalog.runs_and_problems(ctx, eid)
        return http_util.Respond(request, {"runs": [describe_run(r) for r in runs], "errors": errors}, JSON)

    @route("GET")
    def _serve_methods(self, request):
        """GET methods: the method registry."""
        return http_util.Respond(request, {"methods": registry.describe_methods()}, JSON)

    @route("GET")
    def _serve_layers(self, request):
        """GET layers: one checkpoint's layers (folded ones marked), default layer, head, and which methods apply
        (the worker's cached answer, else the manifest's)."""
        ctx, eid = request_context(request)
        run = parsing.run_name(request.args.get("run"))
        step = parsing.integer_text(request.args.get("step"), "step", parsing.MAX_STEP)
        ckpt = self.catalog.checkpoint(ctx, eid, run, step)
        manifest = ckpt.manifest
        answer = applicability.cached_answer(self.cache, ckpt)  # a GET only reads: no worker, no model load
        body = {
            **applicability.layer_records(manifest, answer["folded_layers"] if answer is not None else None),
            "head": model_info.manifest_head(manifest),
            "class_names": manifest["class_names"],
            "methods": answer["methods"] if answer is not None else method_applicability(manifest),
            "methods_from": "model" if answer is not None else "manifest",
        }
        return http_util.Respond(request, body, JSON)

    @route("POST")
    def _serve_applicability(self, request):
        """POST applicability: which methods apply to one checkpoint and which layers were folded (a worker's look; cached)."""
        ctx, eid = request_context(request)
        run, step = parsing.parse_applicability(parsing.read_json(request))
        ckpt = self.catalog.checkpoint(ctx, eid, run, step)
        answer = applicability.answer_of(self.cache, self.pool, ckpt, [m["id"] for m in registry.describe_methods()])
        body = {"run": run, "step": step, "methods": answer["methods"], "methods_from": "model"}
        return http_util.Respond(request, {**body, **applicability.layer_records(ckpt.manifest, answer["folded_layers"])}, JSON)

    @route("GET")
    def _serve_image(self, request):
        """GET image: one stored sample as PNG; cached for long only when `v` is the set's current sha256."""
        ctx, eid = request_context(request)
        run = parsing.run_name(request.args.get("run"))
        name = parsing.sample_set_name(request.args.get("samples"), "samples")
        index = parsing.integer_text(request.args.get("index"), "index")
        version = request.args.get("v")
        if version is not None and not VERSION.match(version):
            raise XaiError("'v' must be a sample set's sha256 (hex digits)")
        ref = self.service.sample_set(ctx, eid, (run, name), [index])
        png = encoding.png_bytes(self.catalog.reader(ref).rows([index])[0], ref.manifest["value_range"])
        expires = VERSIONED_CACHE_S if version == ref.manifest["sha256"] else 0
        return http_util.Respond(request, png, "image/png", expires=expires)

    @route("GET")
    def _serve_progress(self, request):
        """GET progress: a request's state and done / total."""
        rid = parsing.request_id(request.args.get("request_id"))
        if rid is None:
            raise XaiError("the query lacks 'request_id'")
        return http_util.Respond(request, self.jobs.describe(rid), JSON)

    # -- POST -------------------------------------------------------------------------------

    @route("POST")
    def _serve_predictions(self, request):
        """POST predictions: top-k classes per model."""
        ctx, eid = request_context(request)
        parsed = parsing.parse_predictions(parsing.read_json(request))
        return http_util.Respond(request, self.service.predictions(ctx, eid, parsed), JSON)

    @route("POST")
    def _serve_attributions(self, request):
        """POST attributions: maps per (model, method)."""
        ctx, eid = request_context(request)
        parsed = parsing.parse_attributions(parsing.read_json(request))
        return http_util.Respond(request, self.service.attributions(ctx, eid, parsed), JSON)

    @route("POST")
    def _serve_suggestions(self, request):
        """POST suggestions: per-sample statistics across models."""
        ctx, eid = request_context(request)
        parsed = parsing.parse_suggestions(parsing.read_json(request))
        return http_util.Respond(request, self.service.suggestions(ctx, eid, parsed), JSON)

    @route("POST")
    def _serve_scores(self, request):
        """POST scores: faithfulness curves and areas per (model, method)."""
        ctx, eid = request_context(request)
        parsed = parsing.parse_scores(parsing.read_json(request))
        return http_util.Respond(request, scoring.scores(self.service, ctx, eid, parsed), JSON)

    @route("POST")
    def _serve_sanity(self, request):
        """POST sanity: cascading randomization, rho per stage and sample, per (model, method)."""
        ctx, eid = request_context(request)
        parsed = parsing.parse_sanity(parsing.read_json(request))
        return http_util.Respond(request, sanity_check.sanity_body(self.service, ctx, eid, parsed), JSON)

    @route("POST")
    def _serve_first_last(self, request):
        """POST first_last: rho per sample between each run's first and last checkpoint's maps."""
        ctx, eid = request_context(request)
        parsed = parsing.parse_first_last(parsing.read_json(request))
        return http_util.Respond(request, map_agreement.first_last_body(self.service, ctx, eid, parsed), JSON)

    @route("POST")
    def _serve_agreement(self, request):
        """POST agreement: rank agreement of maps between methods (per model) and models (per method)."""
        ctx, eid = request_context(request)
        parsed = parsing.parse_agreement(parsing.read_json(request))
        return http_util.Respond(request, map_agreement.agreement_body(self.service, ctx, eid, parsed), JSON)

    @route("POST")
    def _serve_cancel(self, request):
        """POST cancel: stop a request by its request_id."""
        rid = parsing.parse_cancel(parsing.read_json(request))
        return http_util.Respond(request, {"cancelled": self.jobs.cancel(rid)}, JSON)


def request_context(request):
    """TensorBoard's RequestContext and experiment id of a request."""
    return tb_context.from_environ(request.environ), plugin_util.experiment_id(request.environ)


def describe_run(listing):
    """GET runs' JSON of one RunListing."""
    return {
        "run": listing.run,
        "checkpoints": [
            dict(
                {key: ref.manifest[key] for key in ("step", "model_name", "input_shape", "num_classes", "wall_time")},
                head=model_info.manifest_head(ref.manifest),
                version=checkpoint_key(ref),
            )
            for ref in listing.checkpoints.values()
        ],
        "sample_sets": [
            {key: ref.manifest[key] for key in ("name", "count", "image_shape", "has_labels", "class_names", "sha256")}
            for ref in listing.sample_sets.values()
        ],
    }


def default_flags(**overrides):
    """An argparse.Namespace of this plugin's flags with their defaults (for tests and embedding)."""
    return argparse.Namespace(**dict(DEFAULT_FLAGS, **overrides))
