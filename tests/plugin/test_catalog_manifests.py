"""The catalog's manifest cache never keeps a manifest rewritten within gfile's one-second mtime resolution."""

import glob
import json
import os
import shutil

from tb_xai_plugin import metadata
from tb_xai_plugin.plugin.catalog import Catalog


def test_a_manifest_rewritten_within_its_second_is_read_again(logdir, tmp_path):
    source = sorted(glob.glob(os.path.join(logdir, "*", "plugins", "xai", "checkpoints", "*.json")))[0]
    path = shutil.copy(source, str(tmp_path / os.path.basename(source)))
    catalog = Catalog(str(tmp_path), data_provider=None)
    first = catalog._manifest(path, metadata.KIND_CHECKPOINT)
    manifest = json.load(open(path))
    manifest["weights_sha256"] = "0" * 64  # re-logged: new weights, same size, same second
    with open(path, "w") as f:
        json.dump(manifest, f)
    assert catalog._manifest(path, metadata.KIND_CHECKPOINT)["weights_sha256"] == "0" * 64 != first["weights_sha256"]
