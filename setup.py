"""The tb-xai package: the plugin, its pins, its TensorBoard entry point and the frontend build."""

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
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(include=["tb_xai_plugin", "tb_xai_plugin.*"]),
    package_data={"tb_xai_plugin": ["static/*"]},
    install_requires=[
        "tensorflow==2.14.1",
        "innvestigate==2.1.2",
        "tensorboard>=2.14,<2.15",
        "numpy>=1.26,<2",
        "protobuf>=3.20.3,<5,!=4.24.0",
        "setuptools<82",
        "werkzeug>=3,<4",
        "h5py>=3.9,<4",
        "pillow>=10,<12",
        "scikit-image>=0.24,<0.25",
        "scipy>=1.9,<2",
        "psutil>=5.9,<7",  # --xai_worker_memory_mb reads the workers' resident memory
    ],
    cmdclass={"build_py": BuildWithFrontend},
    entry_points={
        "tensorboard_plugins": ["xai = tb_xai_plugin.plugin.loader:XaiLoader"],
        "console_scripts": ["tb-xai = tb_xai_plugin.cli:main"],
    },
)
