"""Hostile input on every route (hypothesis): wrong types, huge and negative numbers, NaN, enormous and
deeply nested bodies, unknown fields, run names with '..', '/', '%2e%2e', NUL or any Unicode, steps
that do not exist. Always a JSON answer with a 4xx for bad input, never a 500; a secret file next to
the logdir never appears in an answer, and no path outside the logdir and cache (beside the code of
the interpreter, TensorFlow and tb-xai) is ever opened, listed or stat'ed by the server or its workers:
a sitecustomize on PYTHONPATH (path_audit/) records every open() and listing, h5py file and
tf.io.gfile call of every process, the spawned workers included."""

import glob
import http.client
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import urllib.parse

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import tb_xai_plugin
from tests.plugin.conftest import body_of
from tests.reliability.conftest import SAMPLES, HttpServed

SECRET = b"tb-xai-secret-4f9c2e"
AUDIT_SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "path_audit")  # its sitecustomize.py records paths
SYSTEM_FOLDERS = ["/proc", "/sys", "/dev", "/etc", "/usr/lib", "/usr/share", "/lib", os.path.expanduser("~/.keras")]
ALLOWED_STATUS = {200, 400, 403, 404, 405, 409, 413}
EXAMPLES = int(os.environ.get("XAI_FUZZ_EXAMPLES", "40"))  # per route; raise it for a longer hunt
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NASTY_NAMES = [
    "..", "../..", "m1/..", "m1/../../secret", "../secret.txt", "/etc/passwd", "%2e%2e", "%2e%2e%2fsecret.txt",
    "..%2f", "m1\x00", "m1\x00/../..", "./m1", "m1/./", "m1/", "m1//x", "\\..\\secret.txt", "C:\\secret", "~",
    "\u202e1m", "m\u0301", "\ud7ff", "💥", "." * 600, "m1" * 300, " ", "", ".",
]  # fmt: skip


@pytest.fixture(scope="module")
def hostile(three_models, tmp_path_factory):
    """A server on a private logdir copy with a secret file beside it; yields (server, path audit, parent folder)."""
    parent = tmp_path_factory.mktemp("hostile")
    logdir = str(parent / "logdir")
    shutil.copytree(three_models, logdir)
    (parent / "secret.txt").write_bytes(SECRET)
    os.makedirs(os.path.join(logdir, "..", "m1"), exist_ok=True)
    (parent / "m1" / "secret.txt").write_bytes(SECRET)
    with PathAudit(str(parent / "audit.log"), str(parent)) as audit:
        server = HttpServed(logdir, str(parent / "cache"))
        yield server, audit, str(parent)
        server.close()


class PathAudit:
    """Context: every path this process and the worker processes it spawns open, list or stat, checked against
    the places a server may read: its logdir and cache, and the code of the interpreter, TensorFlow and tb-xai."""

    def __init__(self, log_path, parent):
        self.log_path, self.parent = log_path, parent
        self.allowed = [os.path.join(parent, "logdir"), os.path.join(parent, "cache"), log_path]  # the test reads the log
        package = os.path.dirname(tb_xai_plugin.__file__)
        tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # pytest and hypothesis run in this process too
        repo = os.path.dirname(tests)
        metadata = glob.glob(os.path.join(repo, "*.egg-info"))  # an editable install's version, for cache keys
        self.code = [sys.prefix, sys.base_prefix, sys.exec_prefix, package, tests, os.path.join(repo, ".hypothesis")] + metadata
        self.patch = pytest.MonkeyPatch()
        self.site, self.checked = None, 0

    def __enter__(self):
        self.patch.setenv("XAI_PATH_AUDIT_LOG", self.log_path)  # inherited by the spawned workers, with PYTHONPATH
        self.patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [AUDIT_SITE, os.environ.get("PYTHONPATH")])))
        spec = importlib.util.spec_from_file_location("xai_path_audit", os.path.join(AUDIT_SITE, "sitecustomize.py"))
        self.site = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.site)
        self.site.install(self.log_path)
        return self

    def __exit__(self, *exc):
        self.site.stop()
        self.patch.undo()

    def entries(self, start=0):
        """([(pid, event, path)] recorded by every process from byte `start` of the log, the offset after them)."""
        with open(self.log_path, "rb") as f:
            f.seek(start)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next call
        lines = complete.decode("utf-8").splitlines()
        return [tuple(line.split("\t", 2)) for line in lines if line.count("\t") >= 2], start + len(complete)

    def outside(self):
        """The entries since the last call whose path is neither in the logdir or cache, nor (outside the hostile
        folder) code, the system's or temporary files; each entry is judged once, so one finding fails one check."""
        entries, self.checked = self.entries(self.checked)
        import_path = {os.path.abspath(folder or ".") for folder in sys.path} | {os.getcwd()}
        temp = tempfile.gettempdir()

        def fine(event, path):
            if any(inside(path, folder) for folder in self.allowed):
                return True
            if inside(path, self.parent):
                return False
            if event in ("os.listdir", "os.scandir", "os.chdir") and path in import_path:
                return True  # the import system lists sys.path; a spawned worker enters its parent's folder
            if path == temp or os.path.dirname(path) in (temp, os.path.join(temp, "__pycache__")):
                return True  # tempfile's own files, autograph's generated modules
            return any(inside(path, folder) for folder in self.code + SYSTEM_FOLDERS)

        return [entry for entry in entries if not fine(entry[1], entry[2])]


def check(response, hostile_state):
    """The answer is an allowed status, JSON with an error message when 4xx, and holds no secret."""
    server, audit, parent = hostile_state
    assert response.status_code in ALLOWED_STATUS, (response.status_code, response.get_data()[:300])
    data = response.get_data()
    assert SECRET not in data
    if response.status_code == 404 and response.mimetype != "application/json":
        assert b"Not found" in data or b"not found" in data.lower()  # TensorBoard's router: no plugin route matched
    elif response.status_code >= 400:
        body = json.loads(data)
        assert isinstance(body["error"], str) and body["error"]
    outside = audit.outside()
    assert outside == [], outside[:5]


def fuzz_check(response, hostile_state):
    """check(), and the status as a hypothesis event (--hypothesis-show-statistics shows the spread)."""
    event("status %d" % response.status_code)
    check(response, hostile_state)


def inside(path, folder):
    """Whether `path` (resolved, symlinks included) lies in `folder`."""
    path = os.path.realpath(os.path.join(os.getcwd(), path))
    folder = os.path.realpath(folder)
    return path == folder or path.startswith(folder + os.sep)


json_leaf = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30)
    | st.sampled_from(NASTY_NAMES)
)  # fmt: skip
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15,
)  # fmt: skip
run_value = st.sampled_from(NASTY_NAMES + ["m1", "m2"]) | st.text(max_size=40) | json_leaf
step_value = st.integers(-(2**65), 2**65) | st.sampled_from([1, 0, 2**63, -1, 1.0, True, "1", None]) | json_leaf
index_value = st.integers(-(2**40), 2**40) | st.sampled_from([0, 15, 16, -1, 2**31, 0.5, False, "0"]) | json_leaf
model_value = st.fixed_dictionaries({"run": run_value, "step": step_value}) | json_value
samples_value = st.fixed_dictionaries({"run": run_value, "name": st.sampled_from(["val", "../val", "v al", ".."]) | json_leaf})
method_value = st.fixed_dictionaries(
    {"id": st.sampled_from(["gradient", "grad_cam", "occlusion", "../gradient"]) | json_leaf},
    optional={"params": st.dictionaries(st.sampled_from(["window", "stride", "postprocess", "x"]), json_leaf, max_size=3)},
)  # fmt: skip


def body_strategy(valid, fields):
    """Bodies that start valid and have some fields replaced by hostile values (or extra ones added)."""
    replaced = st.fixed_dictionaries({}, optional=fields)
    extra = st.dictionaries(st.text(max_size=12), json_value, max_size=2)
    return st.tuples(replaced, extra).map(lambda parts: dict(valid, **parts[0], **parts[1])) | json_value


VALID = {"models": [{"run": "m1", "step": 1}], "samples": SAMPLES, "indices": [0]}
COMMON = {
    "models": st.lists(model_value, max_size=3) | json_value,
    "samples": samples_value | json_value,
    "indices": st.lists(index_value, max_size=4) | json_value,
    "request_id": st.text(max_size=70) | json_leaf,
}
ATTRIBUTIONS = dict(
    COMMON,
    methods=st.lists(method_value, max_size=3) | json_value,
    target=st.fixed_dictionaries({"kind": st.sampled_from(["class", "label", "predicted", "x"]), "index": index_value}) | json_value,
    layer=st.sampled_from(["conv", "dense", "nope", "\x00", "../conv"]) | json_leaf,
    neuron=index_value,
    seed=index_value,
)
PREDICTIONS = dict(COMMON, top_k=index_value)
SUGGESTIONS = dict(COMMON, layer=ATTRIBUTIONS["layer"], neuron=index_value, evidence=json_leaf | json_value)
SCORES = dict(
    ATTRIBUTIONS,
    metrics=st.lists(st.sampled_from(["deletion", "insertion", "morf", "lerf", "x"]) | json_leaf, max_size=5) | json_value,
    fill=st.sampled_from(["mean", "zero", "blur", "x"]) | json_leaf,
    steps=index_value,
    region=index_value,
)
SANITY = dict(ATTRIBUTIONS, max_stages=index_value, randomization=st.sampled_from(["permute", "init", "x"]) | json_leaf)
FIRST_LAST = dict({k: v for k, v in ATTRIBUTIONS.items() if k != "models"}, runs=st.lists(run_value, max_size=3) | json_value)


@FUZZ
@given(body=body_strategy(dict(VALID, methods=[{"id": "gradient"}]), ATTRIBUTIONS))
def test_attributions_fuzz(hostile, body):
    fuzz_check(hostile[0].post("attributions", body), hostile)


@FUZZ
@given(body=body_strategy(VALID, PREDICTIONS))
def test_predictions_fuzz(hostile, body):
    fuzz_check(hostile[0].post("predictions", body), hostile)


@FUZZ
@given(body=body_strategy({"models": VALID["models"], "samples": SAMPLES}, SUGGESTIONS))
def test_suggestions_fuzz(hostile, body):
    fuzz_check(hostile[0].post("suggestions", body), hostile)


@FUZZ
@given(body=body_strategy(dict(VALID, methods=[{"id": "gradient"}]), SCORES))
def test_scores_fuzz(hostile, body):
    fuzz_check(hostile[0].post("scores", body), hostile)


@FUZZ
@given(body=body_strategy(dict(VALID, methods=[{"id": "gradient"}]), SANITY))
def test_sanity_fuzz(hostile, body):
    fuzz_check(hostile[0].post("sanity", body), hostile)


@FUZZ
@given(body=body_strategy(dict(VALID, methods=[{"id": "gradient"}]), ATTRIBUTIONS))
def test_agreement_fuzz(hostile, body):
    fuzz_check(hostile[0].post("agreement", body), hostile)


@FUZZ
@given(body=body_strategy({"runs": ["m1"], "samples": SAMPLES, "indices": [0], "methods": [{"id": "gradient"}]}, FIRST_LAST))
def test_first_last_fuzz(hostile, body):
    fuzz_check(hostile[0].post("first_last", body), hostile)


@FUZZ
@given(body=body_strategy({"run": "m1", "step": 1}, {"run": run_value, "step": step_value}))
def test_applicability_fuzz(hostile, body):
    fuzz_check(hostile[0].post("applicability", body), hostile)


@FUZZ
@given(body=body_strategy({"request_id": "r1"}, {"request_id": COMMON["request_id"]}))
def test_cancel_fuzz(hostile, body):
    fuzz_check(hostile[0].post("cancel", body), hostile)


query_value = st.sampled_from(NASTY_NAMES) | st.text(max_size=30) | st.integers(-(2**70), 2**70).map(str)


@FUZZ
@given(route=st.sampled_from(["layers", "image", "progress", "runs", "methods", "index.js"]),
       query=st.dictionaries(st.sampled_from(["run", "step", "samples", "index", "request_id", "x"]), query_value, max_size=4),
       raw=st.booleans())  # fmt: skip
def test_get_routes_fuzz(hostile, route, query, raw):
    server = hostile[0]
    if raw:  # percent-encoded by hand: %2e%2e arrives decoded, as '..'
        text = "&".join("%s=%s" % (k, urllib.parse.quote(v, safe="%")) for k, v in query.items())
        response = server.client.get("/data/plugin/xai/" + route + "?" + text)
    else:
        response = server.get(route, **query)
    fuzz_check(response, hostile)


@FUZZ
@given(name=st.sampled_from(["..%2fsecret.txt", "%2e%2e", "..", "index.js%00", "..%5csecret.txt"]) | st.text(min_size=1, max_size=30))
def test_static_route_fuzz(hostile, name):
    fuzz_check(hostile[0].client.get("/data/plugin/xai/static/" + urllib.parse.quote(name, safe="%")), hostile)


@pytest.mark.parametrize("name", NASTY_NAMES, ids=lambda name: ascii(name)[:24])
def test_every_nasty_run_name_is_refused_everywhere(hostile, name):
    server = hostile[0]
    answers = [
        server.post("predictions", dict(VALID, models=[{"run": name, "step": 1}])),
        server.post("attributions", dict(VALID, samples={"run": name, "name": "val"}, methods=[{"id": "gradient"}])),
        server.get("layers", run=name, step="1"),
        server.get("image", run=name, samples="val", index="0"),
    ]
    for response in answers:
        assert response.status_code in (400, 404), (name, response.get_data()[:200])
        check(response, hostile)


def test_steps_and_samples_that_do_not_exist_answer_404(hostile):
    server = hostile[0]
    missing = [
        (server.post("predictions", dict(VALID, models=[{"run": "m1", "step": 999}])), "no checkpoint at step 999"),
        (server.post("predictions", dict(VALID, indices=[16])), "there is no index 16"),
        (server.post("predictions", dict(VALID, samples={"run": "m2", "name": "val"})), "no sample set named 'val'"),
        (server.get("layers", run="m1", step=str(2**63 - 1)), "no checkpoint at step"),
        (server.get("image", run="m1", samples="val", index="16"), "there is no index 16"),
    ]
    for response, message in missing:
        assert response.status_code == 404 and message in body_of(response)["error"], response.get_data()[:200]
        check(response, hostile)


@pytest.mark.parametrize(
    "data, status",
    [
        (b"{" * 100000 + b"}" * 100000, 400),  # deep nesting: RecursionError, answered as bad JSON
        (b"[" * 5000 + b"]" * 5000, 400),
        (b'{"models": "' + b"x" * (2 << 20) + b'"}', 413),
        (b'{"models": [{"run": "m1", "step": NaN}], "samples": {"run": "m1", "name": "val"}}', 400),
        (b'{"models": [{"run": "m1", "step": 1e999}], "samples": {"run": "m1", "name": "val"}}', 400),
        (b"\xff\xfe not utf-8", 400),
        (b"", 400),
        (b"[1, 2]", 400),
    ],
    ids=["deep-braces", "deep-brackets", "2MiB", "NaN", "1e999", "not-utf8", "empty", "array"],
)
def test_malformed_bodies(hostile, data, status):
    response = hostile[0].post("predictions", data)
    assert response.status_code == status, response.get_data()[:200]
    check(response, hostile)


def test_enormous_chunked_body_without_a_length_is_cut_at_the_limit(hostile):
    server = hostile[0]
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    chunks = [b'{"models": "'] + [b"x" * 65536] * 40 + [b'"}']
    headers = {"X-XAI-Request": "1", "Content-Type": "application/json"}
    connection.request("POST", "/data/plugin/xai/predictions", body=iter(chunks), headers=headers, encode_chunked=True)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    assert response.status == 413 and "over 1048576 bytes" in json.loads(data)["error"]
    assert SECRET not in data


def test_valid_requests_still_answer_after_the_fuzz(hostile):
    response = hostile[0].post("predictions", dict(VALID, top_k=2))
    assert response.status_code == 200 and body_of(response)["models"][0]["ok"] is True
    seen = hostile[1].entries()[0]
    logdir = os.path.join(hostile[2], "logdir")
    opened = ("h5py.File", "open")  # a Keras 2 .h5 is read in C by h5py, a Keras 3 .keras (a zip) through open()
    workers = {pid for pid, event, path in seen if event in opened and inside(path, logdir) and int(pid) != os.getpid()}
    assert workers and any(inside(path, logdir) and int(pid) == os.getpid() for pid, _, path in seen)  # both sides audited
    assert hostile[1].outside() == []
