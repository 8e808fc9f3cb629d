"""The tb-xai package: the plugin, its dependency ranges, its TensorBoard entry point and the frontend build."""

import os
import shutil
import subprocess

import setuptools
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLE = os.path.join(HERE, "tb_xai_plugin", "static", "index.js")


class BuildWithFrontend(build_py):
    """Builds the dashboard bundle (frontend/ -> tb_xai_plugin/static/) before packaging it."""

    def run(self):
        # An editable install (`make setup`) leaves the bundle to `make frontend`.
        if not getattr(self, "editable_mode", False) and not os.path.exists(BUNDLE):
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("building tb-xai needs npm (Node.js 20) for the dashboard bundle")
            subprocess.check_call([npm, "ci"], cwd=os.path.join(HERE, "frontend"))
            subprocess.check_call([npm, "run", "build"], cwd=os.path.join(HERE, "frontend"))
        super().run()


setuptools.setup(
    name="tb-xai",
    version="0.1.0",
    description="A TensorBoard plugin that explains image classifiers",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["tb_xai_plugin", "tb_xai_plugin.*"]),
    package_data={"tb_xai_plugin": ["static/*"]},
    # Ranges, never pins: installing tb-xai must leave the user's TensorFlow, Keras and numpy as they
    # are. Both tested stacks (requirements.txt, requirements-innvestigate.txt) lie inside them.
    install_requires=[
        "tensorflow>=2.14",
        "keras>=2.14",
        "tensorboard>=2.14",
        "numpy>=1.26",
        "protobuf>=3.20.3,!=4.24.0",
        "werkzeug>=3,<4",
        "h5py>=3.9,<4",
        "pillow>=10,<13",
        "scikit-image>=0.24,<0.25",
        "scipy>=1.9,<2",
        "psutil>=5.9,<7",  # --xai_worker_memory_mb reads the workers' resident memory
    ],
    extras_require={
        # The Keras 2 stack with the paper's engine. iNNvestigate 2.1.2 requires tensorflow<2.15 and
        # Python<3.12: pip cannot make an extra depend on the TensorFlow already installed, so this
        # names the whole stack it needs; README says where to use it (not in a TF >= 2.15 environment).
        "innvestigate": [
            "innvestigate==2.1.2",
            "tensorflow>=2.14,<2.15",
            "keras>=2.14,<2.15",
            "tensorboard>=2.14,<2.15",
            "numpy>=1.26,<2",
            "setuptools<82",  # TensorBoard 2.14 finds plugins through pkg_resources
        ],
        # `tb-xai precompute` (docs/precompute.md): an Apache Beam pipeline.
        "beam": ["apache-beam>=2.77,<3"],
    },
    cmdclass={"build_py": BuildWithFrontend},
    entry_points={
        "tensorboard_plugins": ["xai = tb_xai_plugin.plugin.loader:XaiLoader"],
        "console_scripts": ["tb-xai = tb_xai_plugin.cli:main"],
    },
)
